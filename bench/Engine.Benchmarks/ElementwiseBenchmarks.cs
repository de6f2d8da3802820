using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// The memory-bound CPU kernels at GPT-2 small shapes (N = B·T = 512 rows, C = 768; the MLP's 4C for GELU and
/// SwiGLU; cross-entropy over 256 rows of the 50257-token vocabulary; AdamW and the squared norm over 16M parameters).
/// The GB/s column is the nominal bytes each call must read and write (each tensor once) over the mean time.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BandwidthConfig))]
public class ElementwiseBenchmarks
{
    private const long N = 512, C = 768, H = 4 * C, B = 4, T = 128, Vocab = 50257, LossRows = 256, Params = 16L << 20;
    private const long F32 = sizeof(float);

    private CpuBackend cpu = null!;
    private Tensor x, y, dy, dx, w, b, dw, db, mean, rstd;
    private Tensor hidden, hiddenOut, hiddenGrad, hiddenOutGrad, swiIn, swiOut, swiInGrad, swiOutGrad;
    private Tensor tokens, table, tableGrad, wpe, wpeGrad, x3, logits, targets, losses;
    private Tensor param, grad, m, v;

    [GlobalSetup]
    public void Setup()
    {
        cpu = new CpuBackend();
        var rng = new Random(1);
        Tensor Random(params long[] dims)
        {
            var t = cpu.AllocateTensor(DType.F32, dims);
            var data = new float[t.ElementCount];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (float)((rng.NextDouble() * 2) - 1);
            }

            cpu.CopyFromHost<float>(t, data);
            return t;
        }

        Tensor Ids(long count, long max)
        {
            var t = cpu.AllocateTensor(DType.I32, count);
            var data = new int[count];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = rng.Next((int)max);
            }

            cpu.CopyFromHost<int>(t, data);
            return t;
        }

        (x, y, dy, dx) = (Random(N, C), Random(N, C), Random(N, C), Random(N, C));
        (w, b, dw, db, mean, rstd) = (Random(C), Random(C), Random(C), Random(C), Random(N), Random(N));
        (hidden, hiddenOut, hiddenGrad, hiddenOutGrad) = (Random(N, H), Random(N, H), Random(N, H), Random(N, H));
        (swiIn, swiOut, swiInGrad, swiOutGrad) = (Random(N, 2 * H), Random(N, H), Random(N, 2 * H), Random(N, H));
        (tokens, table, tableGrad) = (Ids(N, Vocab), Random(Vocab, C), Random(Vocab, C));
        (wpe, wpeGrad, x3) = (Random(1024, C), Random(1024, C), Random(B, T, C));
        (logits, targets, losses) = (Random(LossRows, Vocab), Ids(LossRows, Vocab), Random(LossRows));
        (param, grad, m, v) = (Random(Params), Random(Params), Random(Params), Random(Params));
        cpu.Fill(v, 1e-3f);
        cpu.LayerNormForward(y, mean, rstd, x, w, b, 1e-5f);
    }

    [GlobalCleanup]
    public void Cleanup() => cpu.Dispose();

    [Benchmark]
    [BytesMoved(F32 * ((2 * N * C) + (2 * C) + (2 * N)))]
    public void LayerNormForward() => cpu.LayerNormForward(y, mean, rstd, x, w, b, 1e-5f);

    [Benchmark]
    [BytesMoved(F32 * ((4 * N * C) + (5 * C) + (2 * N)))]
    public void LayerNormBackward() => cpu.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd);

    [Benchmark]
    [BytesMoved(F32 * ((2 * N * C) + C + N))]
    public void RmsNormForward() => cpu.RmsNormForward(y, rstd, x, w, 1e-5f);

    [Benchmark]
    [BytesMoved(F32 * ((4 * N * C) + (3 * C) + N))]
    public void RmsNormBackward() => cpu.RmsNormBackward(dx, dw, dy, x, w, rstd);

    [Benchmark]
    [BytesMoved(F32 * 2 * N * H)]
    public void GeluForward() => cpu.GeluForward(hiddenOut, hidden);

    [Benchmark]
    [BytesMoved(F32 * 4 * N * H)]
    public void GeluBackward() => cpu.GeluBackward(hiddenGrad, hiddenOutGrad, hidden);

    [Benchmark]
    [BytesMoved(F32 * 3 * N * H)]
    public void SwiGluForward() => cpu.SwiGluForward(swiOut, swiIn);

    [Benchmark]
    [BytesMoved(F32 * 7 * N * H)]
    public void SwiGluBackward() => cpu.SwiGluBackward(swiInGrad, swiOutGrad, swiIn);

    [Benchmark]
    [BytesMoved(F32 * 2 * N * C)]
    public void DropoutForward() => cpu.DropoutForward(y, x, 0.1f, 1234, 0);

    [Benchmark]
    [BytesMoved(F32 * 3 * N * C)]
    public void DropoutBackward() => cpu.DropoutBackward(dx, dy, 0.1f, 1234, 0);

    [Benchmark]
    [BytesMoved(F32 * ((2 * N * C) + N))]
    public void EmbeddingForward() => cpu.EmbeddingForward(y, tokens, table);

    [Benchmark]
    [BytesMoved(F32 * ((3 * N * C) + N))]
    public void EmbeddingBackward() => cpu.EmbeddingBackward(tableGrad, dy, tokens);

    [Benchmark]
    [BytesMoved(F32 * ((2 * B * T * C) + (T * C)))]
    public void PositionEmbeddingForward() => cpu.PositionEmbeddingForward(x3, wpe);

    [Benchmark]
    [BytesMoved(F32 * ((B * T * C) + (2 * T * C)))]
    public void PositionEmbeddingBackward() => cpu.PositionEmbeddingBackward(wpeGrad, x3);

    [Benchmark]
    [BytesMoved(F32 * LossRows * (Vocab + 2))]
    public void CrossEntropyForward() => cpu.CrossEntropyForward(losses, logits, targets);

    [Benchmark]
    [BytesMoved(F32 * LossRows * ((2 * Vocab) + 2))]
    public void CrossEntropyForwardBackward() => cpu.CrossEntropyForwardBackward(losses, logits, targets, 1f / LossRows);

    [Benchmark]
    [BytesMoved(F32 * 7 * Params)]
    public void AdamW16M() => cpu.AdamW(param, grad, m, v, new AdamWParameters(1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 10));

    [Benchmark]
    [BytesMoved(F32 * Params)]
    public double SquaredNorm16M() => cpu.SquaredNorm(grad);
}

/// <summary>The bytes one call of a benchmark reads and writes, for the GB/s column.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BytesMovedAttribute(long bytes) : Attribute
{
    /// <summary>Bytes per call.</summary>
    public long Bytes { get; } = bytes;
}

/// <summary>Adds the GB/s column.</summary>
public sealed class BandwidthConfig : ManualConfig
{
    public BandwidthConfig() => AddColumn(new RateColumn(
        "GB/s", "Bytes read and written per second ([BytesMoved] over the mean time)",
        b => b.Descriptor.WorkloadMethod.GetCustomAttribute<BytesMovedAttribute>()?.Bytes));
}
