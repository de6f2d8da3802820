using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Json;
using Engine.Models.Formats;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Formats;

/// <summary>float32 ↔ bfloat16 / float16 conversions of stored weights, against PyTorch's (tests/fixtures/generate_dtype_fixtures.py).</summary>
[Trait("Category", "Formats")]
public sealed class StorageDTypeConversionTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-dtype-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Writer_rounds_to_bf16_and_f16_as_pytorch_does_and_reading_widens_exactly()
    {
        var torch = TorchConversions.Load();
        float[] values = [.. torch.Float32Bits.Select(BitConverter.UInt32BitsToSingle)];
        var writer = new SafetensorsWriter();
        writer.AddBf16("b", values, values.Length);
        writer.AddF16("h", values, values.Length);
        string path = Path.Combine(dir, "t.safetensors");
        writer.Save(path);

        using var file = SafetensorsFile.Open(path);
        var bf16 = new ushort[values.Length];
        var f16 = new ushort[values.Length];
        file.ReadBytes("b", MemoryMarshal.AsBytes(bf16.AsSpan()));
        file.ReadBytes("h", MemoryMarshal.AsBytes(f16.AsSpan()));
        float[] bf16Wide = file.ReadF32("b"), f16Wide = file.ReadF32("h");
        for (int i = 0; i < values.Length; i++)
        {
            string at = $"value {i} (0x{torch.Float32Bits[i]:X8})";
            CheckBits(torch.Bf16Bits[i], bf16[i], Bf16.ToSingle, at + " as bf16");
            CheckBits(torch.F16Bits[i], f16[i], b => (float)BitConverter.UInt16BitsToHalf(b), at + " as fp16");
            CheckWide(torch.Bf16WideBits[i], bf16Wide[i], at + " bf16 widened");
            CheckWide(torch.F16WideBits[i], f16Wide[i], at + " fp16 widened");
        }
    }

    [Fact]
    public void Vectorised_bf16_rounding_equals_the_scalar_rule_at_every_length()
    {
        var random = new Random(5);
        uint[] specials = [0x7FC00000, 0xFFC00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x00008000, 0x80018000, 0];
        for (int n = 0; n <= 300; n++)
        {
            var source = new float[n];
            for (int i = 0; i < n; i++)
            {
                uint bits = random.Next(4) == 0 ? specials[random.Next(specials.Length)] : (uint)random.NextInt64(0, 1L << 32);
                source[i] = BitConverter.UInt32BitsToSingle(bits);
            }

            var vectorised = new ushort[n];
            Bf16.FromSingle(source, vectorised);
            for (int i = 0; i < n; i++)
            {
                Assert.True(Bf16.FromSingle(source[i]) == vectorised[i], $"n={n}, i={i}: 0x{BitConverter.SingleToUInt32Bits(source[i]):X8}");
            }
        }
    }

    [Fact]
    public void Widening_then_rounding_returns_every_bf16_and_f16_bit_pattern_unchanged()
    {
        ushort[] all = [.. Enumerable.Range(0, 1 << 16).Select(i => (ushort)i)];
        var wide = new float[all.Length];
        var back = new ushort[all.Length];
        Bf16.ToSingle(all, wide);
        Bf16.FromSingle(wide, back);
        for (int i = 0; i < all.Length; i++)
        {
            // A signalling NaN comes back quietened (still NaN); every other pattern comes back as it was.
            bool signalling = (all[i] & 0x7F80) == 0x7F80 && (all[i] & 0x7F) != 0 && (all[i] & 0x40) == 0;
            Assert.True(signalling ? float.IsNaN(Bf16.ToSingle(back[i])) : back[i] == all[i], $"bf16 0x{all[i]:X4} came back as 0x{back[i]:X4}");
        }

        var halves = MemoryMarshal.Cast<ushort, Half>(all).ToArray();
        var halfBack = new Half[halves.Length];
        TensorPrimitives.ConvertToSingle(halves, wide);
        TensorPrimitives.ConvertToHalf(wide, halfBack);
        for (int i = 0; i < all.Length; i++)
        {
            ushort expected = all[i], actual = BitConverter.HalfToUInt16Bits(halfBack[i]);
            Assert.True(Half.IsNaN(halves[i]) ? Half.IsNaN(halfBack[i]) : expected == actual, $"fp16 0x{expected:X4} came back as 0x{actual:X4}");
        }
    }

    private static void CheckBits(ushort expected, ushort actual, Func<ushort, float> widen, string at)
    {
        if (float.IsNaN(widen(expected)))
        {
            Assert.True(float.IsNaN(widen(actual)), $"{at}: PyTorch gives NaN, got 0x{actual:X4}");
        }
        else
        {
            Assert.True(expected == actual, $"{at}: PyTorch gives 0x{expected:X4}, got 0x{actual:X4}");
        }
    }

    private static void CheckWide(uint expected, float actual, string at)
    {
        float wanted = BitConverter.UInt32BitsToSingle(expected);
        Assert.True(
            float.IsNaN(wanted) ? float.IsNaN(actual) : expected == BitConverter.SingleToUInt32Bits(actual),
            $"{at}: PyTorch gives 0x{expected:X8}, got 0x{BitConverter.SingleToUInt32Bits(actual):X8}");
    }

    /// <summary>dtype_conversions.json: float32 inputs and what PyTorch rounds and widens them to.</summary>
    private sealed record TorchConversions(uint[] Float32Bits, ushort[] Bf16Bits, ushort[] F16Bits, uint[] Bf16WideBits, uint[] F16WideBits)
    {
        public static TorchConversions Load()
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ModelFixture.Directory, "dtype_conversions.json")));
            var root = doc.RootElement;
            uint[] U32(string name) => [.. root.GetProperty(name).EnumerateArray().Select(e => e.GetUInt32())];
            ushort[] U16(string name) => [.. root.GetProperty(name).EnumerateArray().Select(e => e.GetUInt16())];
            var result = new TorchConversions(U32("float32_bits"), U16("bfloat16_bits"), U16("float16_bits"), U32("bfloat16_as_float32_bits"), U32("float16_as_float32_bits"));
            Assert.True(result.Float32Bits.Length > 300, "the fixture holds too few values");
            return result;
        }
    }
}
