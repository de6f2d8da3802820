using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;

namespace Engine.Tests.Alignment;

/// <summary>
/// One token log-prob problem on the host (hidden [N,C], head [V,C], targets, optional mask and reference log-probs,
/// upstream gradients) and the calls that run it through a backend's kernels and through <see cref="AlignmentReference"/>.
/// </summary>
internal sealed class LogProbCase
{
    public required int N { get; init; }

    public required int C { get; init; }

    public required int V { get; init; }

    public required float[] Hidden { get; init; }

    public required float[] Weight { get; init; }

    public required int[] Targets { get; init; }

    public float[]? Mask { get; init; }

    public float[]? Reference { get; init; }

    public float Temperature { get; init; } = 1f;

    public float[]? LogProbsGrad { get; init; }

    public float[]? EntropyGrad { get; init; }

    public float[]? KlGrad { get; init; }

    /// <summary>Materialised head logits (double), for the reference and the from-logits path.</summary>
    public double[] Logits => AlignmentReference.HeadLogits(Hidden, Weight, N, C, V);

    /// <summary>
    /// A seeded problem: hidden in ±2, head in ±1/√C·2, random targets with every 5th row ignored, a 0/1 mask dropping
    /// every 7th row, references near the log-probs, and gradients for every output.
    /// </summary>
    public static LogProbCase Random(int seed, int n, int c, int v, float temperature = 1f, bool withMask = true)
    {
        var targets = TestData.Tokens(seed + 2, n, v);
        for (int i = 3; i < n; i += 5)
        {
            targets[i] = -1;
        }

        float[]? mask = null;
        if (withMask)
        {
            mask = new float[n];
            for (int i = 0; i < n; i++)
            {
                mask[i] = i % 7 == 6 ? 0f : 1f;
            }
        }

        var reference = TestData.Uniform(seed + 4, n, -2f, 2f);
        var hidden = TestData.Uniform(seed, n * c, -2f, 2f);
        var weight = TestData.Uniform(seed + 1, v * c, -2f / MathF.Sqrt(c), 2f / MathF.Sqrt(c));
        var partial = new LogProbCase { N = n, C = c, V = v, Hidden = hidden, Weight = weight, Targets = targets, Temperature = temperature };
        var logp = AlignmentReference.Forward(partial.Logits, targets, null, null, n, v, temperature).LogProbs;
        for (int i = 0; i < n; i++)
        {
            reference[i] = (float)(logp[i] + (0.5 * reference[i]));
        }

        var klGrad = TestData.Uniform(seed + 7, n * 3);
        return new LogProbCase
        {
            N = n, C = c, V = v, Hidden = hidden, Weight = weight, Targets = targets, Mask = mask, Reference = reference,
            Temperature = temperature,
            LogProbsGrad = TestData.Uniform(seed + 5, n),
            EntropyGrad = TestData.Uniform(seed + 6, n),
            KlGrad = klGrad,
        };
    }

    /// <summary>The same problem with other upstream gradients.</summary>
    public LogProbCase WithGrads(float[]? logProbs, float[]? entropy, float[]? kl) => new()
    {
        N = N, C = C, V = V, Hidden = Hidden, Weight = Weight, Targets = Targets, Mask = Mask, Reference = Reference,
        Temperature = Temperature, LogProbsGrad = logProbs, EntropyGrad = entropy, KlGrad = kl,
    };

    public AlignmentReference.Outputs ReferenceForward() =>
        AlignmentReference.Forward(Logits, Targets, Mask, Reference, N, V, Temperature);

    public double[] ReferenceLogitsGrad() =>
        AlignmentReference.LogitsGrad(Logits, Targets, Mask, Reference, LogProbsGrad, EntropyGrad, KlGrad, N, V, Temperature);

    public (double[] HiddenGrad, double[] WeightGrad) ReferenceHeadGrad() =>
        AlignmentReference.HeadGrad(ReferenceLogitsGrad(), Hidden, Weight, N, C, V);
}

/// <summary>Host results of one kernel run.</summary>
internal sealed record LogProbRun(float[] LogProbs, float[] RowStats, float[] Entropy, float[] Kl, float[] HiddenGrad, float[] WeightGrad);

/// <summary>Runs a <see cref="LogProbCase"/> through the backend's kernels.</summary>
internal static class LogProbKernels
{
    /// <summary>Which head entry point to call.</summary>
    public enum Path
    {
        /// <summary>TokenLogProbsForward, then TokenLogProbsBackward from its row statistics.</summary>
        TwoPass,

        /// <summary>TokenLogProbsForwardBackward.</summary>
        Fused,
    }

    /// <summary>
    /// Head path: outputs, and (when <paramref name="backward"/>) dh and dW added onto the given initial values (zeros
    /// when null).
    /// </summary>
    public static LogProbRun Head(Backend backend, LogProbCase p, Path path, bool backward = true, float[]? hiddenGradInit = null, float[]? weightGradInit = null)
    {
        var owned = new List<Tensor>();
        Tensor Up(float[]? data, params long[] dims) => data is null ? default : Track(owned, TestData.Upload(backend, data, dims));
        Tensor Zeros(params long[] dims) => Track(owned, backend.AllocateTensor(DType.F32, dims));
        try
        {
            var hidden = Up(p.Hidden, p.N, p.C);
            var weight = Up(p.Weight, p.V, p.C);
            var inputs = Inputs(backend, p, owned);
            var outputs = new TokenLogProbOutputs(Zeros(p.N), Zeros(p.N, 2), Zeros(p.N), p.Reference is null ? default : Zeros(p.N, 3));
            var grads = new TokenLogProbGrads(Up(p.LogProbsGrad, p.N), Up(p.EntropyGrad, p.N), Up(p.KlGrad, p.N, 3));
            var dh = Up(hiddenGradInit ?? new float[p.N * p.C], p.N, p.C);
            var dw = Up(weightGradInit ?? new float[p.V * p.C], p.V, p.C);
            if (!backward)
            {
                backend.TokenLogProbsForward(outputs, hidden, weight, inputs);
            }
            else if (path == Path.TwoPass)
            {
                backend.TokenLogProbsForward(outputs, hidden, weight, inputs);
                backend.TokenLogProbsBackward(dh, dw, grads, hidden, weight, outputs.RowStats, inputs);
            }
            else
            {
                backend.TokenLogProbsForwardBackward(outputs, dh, dw, grads, hidden, weight, inputs);
            }

            return new LogProbRun(
                TestData.Download(backend, outputs.LogProbs),
                TestData.Download(backend, outputs.RowStats),
                TestData.Download(backend, outputs.Entropy),
                outputs.Kl.IsEmpty ? [] : TestData.Download(backend, outputs.Kl),
                TestData.Download(backend, dh),
                TestData.Download(backend, dw));
        }
        finally
        {
            Free(owned);
        }
    }

    /// <summary>From-logits path on the f32-rounded head logits: outputs, and dlogits added onto the initial values.</summary>
    public static (LogProbRun Outputs, float[] LogitsGrad) FromLogits(Backend backend, LogProbCase p, float[] logits, float[]? logitsGradInit = null)
    {
        var owned = new List<Tensor>();
        Tensor Up(float[]? data, params long[] dims) => data is null ? default : Track(owned, TestData.Upload(backend, data, dims));
        Tensor Zeros(params long[] dims) => Track(owned, backend.AllocateTensor(DType.F32, dims));
        try
        {
            var z = Up(logits, p.N, p.V);
            var inputs = Inputs(backend, p, owned);
            var outputs = new TokenLogProbOutputs(Zeros(p.N), Zeros(p.N, 2), Zeros(p.N), p.Reference is null ? default : Zeros(p.N, 3));
            var grads = new TokenLogProbGrads(Up(p.LogProbsGrad, p.N), Up(p.EntropyGrad, p.N), Up(p.KlGrad, p.N, 3));
            var dz = Up(logitsGradInit ?? new float[p.N * p.V], p.N, p.V);
            backend.TokenLogProbsFromLogitsForward(outputs, z, inputs);
            backend.TokenLogProbsFromLogitsBackward(dz, grads, z, outputs.RowStats, inputs);
            var run = new LogProbRun(
                TestData.Download(backend, outputs.LogProbs),
                TestData.Download(backend, outputs.RowStats),
                TestData.Download(backend, outputs.Entropy),
                outputs.Kl.IsEmpty ? [] : TestData.Download(backend, outputs.Kl),
                [],
                []);
            return (run, TestData.Download(backend, dz));
        }
        finally
        {
            Free(owned);
        }
    }

    /// <summary>SequenceSum forward and backward: (out [B], dvalues [B,T] added onto the initial values).</summary>
    public static (float[] Output, float[] ValuesGrad) SequenceSum(
        Backend backend, float[] values, float[]? mask, float[] outputGrad, int b, int t, bool mean, float[]? valuesGradInit = null)
    {
        var owned = new List<Tensor>();
        try
        {
            var v = Track(owned, TestData.Upload(backend, values, b, t));
            var m = mask is null ? default : Track(owned, TestData.Upload(backend, mask, b, t));
            var output = Track(owned, backend.AllocateTensor(DType.F32, b));
            var g = Track(owned, TestData.Upload(backend, outputGrad, b));
            var dv = Track(owned, TestData.Upload(backend, valuesGradInit ?? new float[b * t], b, t));
            backend.SequenceSum(output, v, m, mean);
            backend.SequenceSumBackward(dv, g, m, mean);
            return (TestData.Download(backend, output), TestData.Download(backend, dv));
        }
        finally
        {
            Free(owned);
        }
    }

    /// <summary>Rounds a double array to f32.</summary>
    public static float[] F32(double[] x) => Array.ConvertAll(x, d => (float)d);

    private static TokenLogProbInputs Inputs(Backend backend, LogProbCase p, List<Tensor> owned)
    {
        var targets = Track(owned, TestData.Upload(backend, p.Targets, p.N));
        var mask = p.Mask is null ? default : Track(owned, TestData.Upload(backend, p.Mask, p.N));
        var reference = p.Reference is null ? default : Track(owned, TestData.Upload(backend, p.Reference, p.N));
        return new TokenLogProbInputs(targets, mask, reference, p.Temperature);
    }

    private static Tensor Track(List<Tensor> owned, Tensor t)
    {
        owned.Add(t);
        return t;
    }

    private static void Free(List<Tensor> owned)
    {
        foreach (var t in owned)
        {
            t.Buffer!.Dispose();
        }
    }
}

/// <summary>A CPU backend whose head path uses the given chunk rows and vocabulary block (0 = the defaults).</summary>
internal static class LogProbBackends
{
    public static CpuBackend Create(int threads, int chunkRows = 0, int vocabBlock = 0) =>
        new(threads) { LogProbChunkRowsOverride = chunkRows, LogProbVocabBlockOverride = vocabBlock };
}
