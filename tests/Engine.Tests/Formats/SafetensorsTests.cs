using System.Buffers.Binary;
using System.Text;
using Engine.Models.Formats;
using Xunit;

namespace Engine.Tests.Formats;

[Trait("Category", "Formats")]
public sealed class SafetensorsTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-safetensors-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Round_trip_keeps_names_shapes_values_and_metadata()
    {
        float[] w = [1.5f, -2.25f, 3.0f, float.MaxValue, float.Epsilon, -0.0f];
        int[] ids = [0, -1, int.MaxValue, int.MinValue];
        float[] scalar = [42f];
        var writer = new SafetensorsWriter();
        writer.AddI32("ids", ids, 2, 2);
        writer.AddF32("w", w, 2, 3);
        writer.AddBf16("h", [1f, 0.5f, -3f], 3);
        writer.AddF32("empty", [], 0, 5);
        writer.AddF32("scalar", scalar);
        writer.AddF32("rank5", new float[2 * 1 * 2 * 1 * 2], 2, 1, 2, 1, 2);
        writer.Metadata["config"] = "{\"a\": 1, \"ünïcode\": \"✓\"}";
        writer.Metadata["format"] = "pt";
        string path = Path.Combine(dir, "a.safetensors");
        writer.Save(path);

        byte[] bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(6, file.Tensors.Count);
        Assert.Equal(["ids", "w", "empty", "scalar", "rank5", "h"], file.Names);
        Assert.Equal("{\"a\": 1, \"ünïcode\": \"✓\"}", file.Metadata["config"]);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(w, file.ReadF32("w"));
        Assert.Equal(ids, file.ReadI32("ids"));
        Assert.Equal([1f, 0.5f, -3f], file.ReadF32("h"));
        Assert.Empty(file.ReadF32("empty"));
        Assert.Equal(scalar, file.ReadF32("scalar"));
        Assert.Empty(file.GetTensor("scalar").Shape);
        Assert.Equal([2L, 1, 2, 1, 2], file.GetTensor("rank5").Shape);
        TensorInfo info = file.GetTensor("w");
        Assert.Equal(SafetensorsDType.F32, info.DType);
        Assert.Equal([2L, 3], info.Shape);
        Assert.Equal(24, info.ByteLength);
        Assert.Equal(0, file.GetTensor("h").DataBegin % 2);
        Assert.Equal(0, info.DataBegin % 4);
    }

    [Fact]
    public void Save_replaces_an_existing_file_and_leaves_no_temporary_files()
    {
        string path = Path.Combine(dir, "b.safetensors");
        File.WriteAllText(path, "old contents");
        var writer = new SafetensorsWriter();
        writer.AddF32("x", [1f, 2f], 2);
        writer.Save(path);
        using (var file = SafetensorsFile.Open(path))
        {
            Assert.Equal([1f, 2f], file.ReadF32("x"));
        }

        Assert.Equal([path], Directory.GetFiles(dir));
    }

    [Fact]
    public void Failed_save_removes_its_temporary_file()
    {
        string target = Path.Combine(dir, "occupied");
        Directory.CreateDirectory(target);
        var writer = new SafetensorsWriter();
        writer.AddF32("x", [1f], 1);
        Assert.ThrowsAny<IOException>(() => writer.Save(target));
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void Writer_rejects_bad_tensors()
    {
        var writer = new SafetensorsWriter();
        writer.AddF32("x", [1f, 2f], 2);
        Assert.Throws<ArgumentException>(() => writer.AddF32("x", [1f], 1));
        Assert.Throws<ArgumentException>(() => writer.AddF32("y", [1f, 2f], 3));
        Assert.Throws<ArgumentException>(() => writer.AddF32("__metadata__", [1f], 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.AddF32("z", [], -1));
    }

    [Fact]
    public void Bf16_widening_is_exact_and_rounding_is_to_nearest_even()
    {
        Assert.Equal(0x3F80, Bf16.FromSingle(1f));
        Assert.Equal(0x3F80, Bf16.FromSingle(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie, even stays
        Assert.Equal(0x3F82, Bf16.FromSingle(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie, odd rounds up
        Assert.Equal(0x3F81, Bf16.FromSingle(BitConverter.UInt32BitsToSingle(0x3F808001)));
        Assert.Equal(0x7F80, Bf16.FromSingle(float.PositiveInfinity));
        Assert.Equal(0xFF80, Bf16.FromSingle(float.NegativeInfinity));
        Assert.Equal(0x7F80, Bf16.FromSingle(float.MaxValue)); // rounds past the largest bf16
        Assert.True(float.IsNaN(Bf16.ToSingle(Bf16.FromSingle(BitConverter.UInt32BitsToSingle(0x7F800001)))));
        Assert.Equal(-2.5f, Bf16.ToSingle(Bf16.FromSingle(-2.5f)));

        // Every bit pattern, through both the vector loop and the scalar tail.
        var all = new ushort[65536 + 7];
        for (int i = 0; i < all.Length; i++)
        {
            all[i] = (ushort)i;
        }

        var widened = new float[all.Length];
        Bf16.ToSingle(all, widened);
        for (int i = 0; i < all.Length; i++)
        {
            Assert.Equal((uint)all[i] << 16, BitConverter.SingleToUInt32Bits(widened[i]));
        }
    }

    [Fact]
    public void Bf16_and_f16_tensors_read_as_float32()
    {
        float[] values = [0f, 1f, -1.5f, 65504f, 6.1035156e-05f, 3.140625f, -0.0009765625f, 1024f, 7f, -7f, 0.25f];
        byte[] f16 = new byte[values.Length * 2];
        byte[] bf16 = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(2 * i), (Half)values[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(2 * i), Bf16.FromSingle(values[i]));
        }

        int len = values.Length * 2;
        string header = $"{{\"a\":{{\"dtype\":\"F16\",\"shape\":[{values.Length}],\"data_offsets\":[0,{len}]}}," +
            $"\"b\":{{\"dtype\":\"BF16\",\"shape\":[{values.Length}],\"data_offsets\":[{len},{2 * len}]}}," +
            $"\"c\":{{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[{2 * len},{(2 * len) + 2}]}}}}";
        string path = WriteRaw("half.safetensors", header, [.. f16, .. bf16, 1, 2]);

        using var file = SafetensorsFile.Open(path);
        float[] fromF16 = file.ReadF32("a");
        float[] fromBf16 = file.ReadF32("b");
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal((float)(Half)values[i], fromF16[i]);
            Assert.Equal(Bf16.ToSingle(Bf16.FromSingle(values[i])), fromBf16[i]);
        }

        Assert.Equal(values, fromF16);
        var raw = new byte[2];
        file.ReadBytes("c", raw);
        Assert.Equal([1, 2], raw);

        var e = Assert.Throws<SafetensorsException>(() => file.ReadF32("c"));
        Assert.Equal("dtype", e.Field);
        e = Assert.Throws<SafetensorsException>(() => file.ReadI32("a"));
        Assert.Equal("dtype", e.Field);
        e = Assert.Throws<SafetensorsException>(() => file.ReadF32("nope"));
        Assert.Equal("name", e.Field);
        Assert.Contains("nope", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => file.ReadF32("a", new float[3]));
    }

    [Fact]
    public void Reference_leniencies_are_kept()
    {
        // Header order need not be offset order, unknown entry fields are ignored, and an empty file is valid.
        string path = WriteRaw(
            "lenient.safetensors",
            "{\"b\":{\"data_offsets\":[4,8],\"shape\":[1],\"dtype\":\"F32\",\"extra\":[1,{}]},\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},\"z\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[8,8]}}  ",
            [7, 0, 0, 0, 0, 0, 128, 63]);
        using (var file = SafetensorsFile.Open(path))
        {
            Assert.Equal(["a", "b", "z"], file.Names);
            Assert.Equal([7], file.ReadI32("a"));
            Assert.Equal([1f], file.ReadF32("b"));
            Assert.Empty(file.Metadata);
        }

        using var empty = SafetensorsFile.Open(WriteRaw("empty.safetensors", "{}", []));
        Assert.Empty(empty.Tensors);
        using var meta = SafetensorsFile.Open(WriteRaw("meta.safetensors", "{\"__metadata__\":{}}", []));
        Assert.Empty(meta.Tensors);
    }

    public static TheoryData<string, string, string?> HostileHeaders => new()
    {
        // header JSON, expected field, expected tensor (null: header-level)
        { "[1, 2]", "header", null },
        { "\"text\"", "header", null },
        { "null", "header", null },
        { "42", "header", null },
        { "{\"a\":", "header", null },
        { "{} x", "header", null },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", "header", null },
        { "\uFEFF{}", "header", null },
        { "{\"a\":" + new string('[', 200) + new string(']', 200) + "}", "header", null },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "name", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", "a" },
        { "{\"__metadata__\":{},\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "__metadata__", null },
        { "{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "__metadata__", null },
        { "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "__metadata__.k", null },
        { "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "__metadata__.k", null },
        { "{\"a\":[]}", "entry", "a" },
        { "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", "a" },
        { "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", "a" },
        { "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,2],\"data_offsets\":[0,8]}}", "shape", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "data_offsets", "b" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}", "data_offsets", "b" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", "data_offsets", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", "data_offsets", "a" },
        { "{}", "data_offsets", null },
        { "{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor name", null },
        { "{\"__metadata__\":{\"k\":\"\\udc00\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "__metadata__.k", null },
    };

    [Theory]
    [MemberData(nameof(HostileHeaders))]
    public void Hostile_header_is_rejected_naming_the_field(string header, string field, string? tensor)
    {
        // Eight data bytes: exactly what the valid variants of these headers describe.
        string path = WriteRaw("hostile.safetensors", header, [1, 2, 3, 4, 5, 6, 7, 8]);
        SafetensorsException e = Reject(path);
        Assert.Equal(field, e.Field);
        Assert.Equal(tensor, e.TensorName);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
        if (tensor is not null)
        {
            Assert.Contains($"'{tensor}'", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Invalid_utf8_header_is_rejected()
    {
        byte[] json = [.. "{\"a?\":{}}"u8];
        json[3] = 0xFF;
        string path = WriteBytes("utf8.safetensors", Frame(json, []));
        Assert.Equal("header", Reject(path).Field);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void File_shorter_than_the_length_prefix_is_rejected(int length)
    {
        string path = WriteBytes("short.safetensors", new byte[length]);
        Assert.Equal("header length", Reject(path).Field);
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 63)]
    [InlineData(100_000_001UL)]
    [InlineData(99_999_999UL)] // within the limit but far beyond the file
    [InlineData(73UL)]          // one byte more than the file holds
    public void Header_length_beyond_the_file_or_limit_is_rejected_without_allocating(ulong headerLength)
    {
        byte[] bytes = Frame("{}\n\n\n\n\n\n"u8.ToArray(), new byte[64]);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        string path = WriteBytes("length.safetensors", bytes);
        Assert.Equal("header length", Reject(path).Field);
    }

    [Fact]
    public void Truncated_data_is_rejected()
    {
        var writer = new SafetensorsWriter();
        writer.AddF32("a", [1f, 2f, 3f], 3);
        string path = Path.Combine(dir, "trunc.safetensors");
        writer.Save(path);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^1]);
        SafetensorsException e = Reject(path);
        Assert.Equal("data_offsets", e.Field);
        Assert.Equal("a", e.TensorName);
        File.WriteAllBytes(path, bytes[..12]);
        Assert.Equal("header length", Reject(path).Field);
    }

    [Fact]
    public void Random_corruption_yields_only_safetensors_exceptions()
    {
        var writer = new SafetensorsWriter();
        writer.AddF32("model.embed.weight", [.. Enumerable.Range(0, 24).Select(i => i * 0.5f)], 4, 6);
        writer.AddBf16("model.norm.weight", [1f, 2f, 3f], 3);
        writer.AddI32("ids", [1, 2, 3, 4], 2, 2);
        writer.AddF32("scalar", [3f]);
        writer.Metadata["config"] = "{\"vocab_size\": 4}";
        string valid = Path.Combine(dir, "valid.safetensors");
        writer.Save(valid);
        byte[] original = File.ReadAllBytes(valid);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);

        var rng = new Random(12345);
        string path = Path.Combine(dir, "fuzz.safetensors");
        int accepted = 0;
        for (int iteration = 0; iteration < 400; iteration++)
        {
            byte[] bytes = (byte[])original.Clone();
            int mutations = 1 + rng.Next(4);
            for (int m = 0; m < mutations; m++)
            {
                // Mostly the length prefix and header (where parsing happens); sometimes structural characters.
                int at = rng.Next(10) < 8 ? rng.Next(headerEnd) : rng.Next(bytes.Length);
                bytes[at] = rng.Next(4) switch
                {
                    0 => (byte)rng.Next(256),
                    1 => Structural[rng.Next(Structural.Length)],
                    2 => (byte)(bytes[at] ^ (1 << rng.Next(8))),
                    _ => (byte)(bytes[at] + (rng.Next(2) * 2) - 1),
                };
            }

            if (rng.Next(8) == 0)
            {
                bytes = bytes[..rng.Next(bytes.Length)];
            }

            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (TensorInfo t in file.Tensors)
                {
                    var raw = new byte[t.ByteLength];
                    file.ReadBytes(t.Name, raw);
                    if (t.DType is SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16)
                    {
                        _ = file.ReadF32(t.Name);
                    }
                }

                accepted++;
            }
            catch (SafetensorsException e)
            {
                Assert.Contains(path, e.Message, StringComparison.Ordinal);
                Assert.NotNull(e.Field);
            }
        }

        // Some mutations (inside float data, or of insignificant whitespace) must still load.
        Assert.InRange(accepted, 1, 399);
    }

    private static readonly byte[] Structural = [.. "{}[]\",:-0123456789eE.\\ "u8];

    private SafetensorsException Reject(string path)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"rejecting {path} allocated {allocated} bytes");
        return e;
    }

    private string WriteRaw(string name, string headerJson, byte[] data) =>
        WriteBytes(name, Frame(Encoding.UTF8.GetBytes(headerJson), data));

    private string WriteBytes(string name, byte[] bytes)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Frame(byte[] header, byte[] data)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }
}
