using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

/// <summary>
/// Block-diagonal causal attention of packed rows against the scalar reference run on each document alone: every
/// document's outputs, log-sum-exps and q/k/v gradients are those of the document as its own sequence.
/// </summary>
[Trait("Category", "Kernels")]
public sealed class PackedAttentionTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Theory]
    [InlineData(new[] { 5, 40, 1, 20 }, 4, 2, 16)]
    [InlineData(new[] { 1, 1, 70, 9 }, 2, 1, 64)]
    [InlineData(new[] { 17, 3, 100 }, 6, 2, 12)]
    public void Each_document_attends_as_if_alone(int[] lengths, int nh, int nkv, int hs)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        int t = lengths.Sum(), qc = shape.QkvChannels, oc = shape.OutChannels;
        float[] qkv = TestData.Uniform(1, t * qc, -2f, 2f);
        float[] dout = TestData.Uniform(2, t * oc);
        var positions = lengths.SelectMany(l => Enumerable.Range(0, l)).ToArray();

        var x = TestData.Upload(backend, qkv, 1, t, qc);
        var ids = TestData.Upload(backend, positions, 1, t);
        var output = backend.AllocateTensor(DType.F32, 1, t, oc);
        var lse = backend.AllocateTensor(DType.F32, 1, nh, t);
        var grad = backend.AllocateTensor(DType.F32, 1, t, qc);
        var dy = TestData.Upload(backend, dout, 1, t, oc);
        backend.Zero(grad);
        backend.AttentionForward(output, lse, x, shape, ids);
        backend.AttentionBackward(grad, dy, x, output, lse, shape, ids);
        float[] packedOut = TestData.Download(backend, output), packedLse = TestData.Download(backend, lse), packedGrad = TestData.Download(backend, grad);
        foreach (var tensor in new[] { x, ids, output, lse, grad, dy })
        {
            tensor.Buffer!.Dispose();
        }

        int start = 0;
        foreach (int length in lengths)
        {
            float[] docQkv = qkv.AsSpan(start * qc, length * qc).ToArray();
            var (expectedOut, expectedLse) = AttentionReference.Forward(docQkv, 1, length, shape);
            float[] expectedGrad = AttentionReference.Backward(dout.AsSpan(start * oc, length * oc).ToArray(), docQkv, 1, length, shape);
            string tag = $"document at {start} of {length} tokens";
            Approx.Equal(expectedOut, packedOut.AsSpan(start * oc, length * oc), 2e-5f, 1e-4f, $"out, {tag}");
            for (int h = 0; h < nh; h++)
            {
                Approx.Equal(expectedLse.AsSpan(h * length, length), packedLse.AsSpan((h * t) + start, length), 2e-5f, 1e-5f, $"lse, head {h}, {tag}");
            }

            Approx.Equal(expectedGrad, packedGrad.AsSpan(start * qc, length * qc), 1e-4f, 1e-3f, $"dqkv, {tag}");
            start += length;
        }
    }
}
