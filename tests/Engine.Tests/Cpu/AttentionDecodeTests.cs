using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class AttentionDecodeTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    /// <summary>
    /// Sequences of different lengths, fed as a right-padded prefill chunk then one token per step (each sequence stops
    /// at its own length): every output row of a real token equals full causal attention over that sequence alone.
    /// </summary>
    [Theory]
    [InlineData(4, 4, 8, 1)]
    [InlineData(6, 2, 12, 3)]
    [InlineData(4, 1, 64, 4)]
    [InlineData(2, 2, 20, 1)]
    public void Prefill_then_steps_match_full_attention_per_sequence(int nh, int nkv, int hs, int prefill)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        int[] lengths = [11, 5, 17];
        int[] prompts = [prefill, Math.Min(prefill + 2, 5), 1];
        int b = lengths.Length, maxT = 20, qc = shape.QkvChannels, oc = shape.OutChannels;
        var sequences = lengths.Select((l, i) => TestData.Uniform(10 + i, l * qc, -2f, 2f)).ToArray();
        var expected = sequences.Select((q, i) => AttentionReference.Forward(q, 1, lengths[i], shape).Item1).ToArray();
        var actual = lengths.Select(l => new float[l * oc]).ToArray();

        using var keys = new Owned(backend.AllocateTensor(DType.F32, b, nkv, maxT, hs));
        using var values = new Owned(backend.AllocateTensor(DType.F32, b, nkv, maxT, hs));
        using var positions = new Owned(backend.AllocateTensor(DType.I32, b));
        var done = new int[b];

        void Step(int tq, int[] counts)
        {
            var qkv = new float[b * tq * qc];
            for (int i = 0; i < b; i++)
            {
                sequences[i].AsSpan(done[i] * qc, counts[i] * qc).CopyTo(qkv.AsSpan(i * tq * qc));
            }

            // Idle sequences sit where their padding cannot reach anything they hold.
            backend.CopyFromHost<int>(positions.T, [.. done.Select((d, i) => counts[i] > 0 ? d : Math.Min(d, maxT - tq))]);
            using var q = new Owned(TestData.Upload(backend, qkv, b, tq, qc));
            using var o = new Owned(backend.AllocateTensor(DType.F32, b, tq, oc));
            backend.AttentionDecode(o.T, q.T, keys.T, values.T, positions.T, shape);
            var output = TestData.Download(backend, o.T);
            for (int i = 0; i < b; i++)
            {
                output.AsSpan(i * tq * oc, counts[i] * oc).CopyTo(actual[i].AsSpan(done[i] * oc));
                done[i] += counts[i];
            }
        }

        Step(prompts.Max(), prompts);
        while (done.Zip(lengths).Any(x => x.First < x.Second))
        {
            Step(1, [.. done.Select((d, i) => d < lengths[i] ? 1 : 0)]);
        }

        for (int i = 0; i < b; i++)
        {
            Approx.Equal(expected[i], actual[i], 2e-5f, 1e-4f, $"sequence {i}");
        }
    }

    [Fact]
    public void Overflowing_the_cache_is_rejected()
    {
        var shape = new AttentionShape(2, 1, 8);
        using var keys = new Owned(backend.AllocateTensor(DType.F32, 1, 1, 4, 8));
        using var values = new Owned(backend.AllocateTensor(DType.F32, 1, 1, 4, 8));
        using var positions = new Owned(TestData.Upload(backend, new[] { 3 }, 1));
        using var qkv = new Owned(backend.AllocateTensor(DType.F32, 1, 2, shape.QkvChannels));
        using var output = new Owned(backend.AllocateTensor(DType.F32, 1, 2, shape.OutChannels));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.AttentionDecode(output.T, qkv.T, keys.T, values.T, positions.T, shape));
    }

    private sealed class Owned(Tensor t) : IDisposable
    {
        public Tensor T { get; } = t;

        public void Dispose() => T.Buffer?.Dispose();
    }
}
