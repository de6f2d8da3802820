using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Conformance;

/// <summary>The same tensor on the reference backend and on the backend under test.</summary>
public readonly record struct Both(Tensor Reference, Tensor Candidate)
{
    /// <summary>The empty tensor on both sides (an optional argument left out).</summary>
    public static Both None => default;

    /// <summary>The same reshape on both sides.</summary>
    public Both Reshape(params long[] dims) => new(Reference.Reshape(dims), Candidate.Reshape(dims));
}

/// <summary>
/// A reference backend (the CPU) and a candidate (CUDA, or another CPU configuration), with helpers to put the same
/// inputs on both, poison outputs, run an op on each, and compare the results by relative error.
/// </summary>
public sealed class BackendPair : IDisposable
{
    private readonly List<DeviceBuffer> owned = [];

    /// <summary>Pairs <paramref name="reference"/> with <paramref name="candidate"/>; neither is disposed by the pair.</summary>
    public BackendPair(Backend reference, Backend candidate)
    {
        Reference = reference;
        Candidate = candidate;
    }

    public Backend Reference { get; }

    public Backend Candidate { get; }

    /// <summary>Floats uploaded to both backends.</summary>
    public Both Upload(float[] data, params long[] dims)
    {
        var pair = Allocate(DType.F32, dims);
        Reference.CopyFromHost<float>(pair.Reference, data);
        Candidate.CopyFromHost<float>(pair.Candidate, data);
        return pair;
    }

    /// <summary>Integers (token ids, targets) uploaded to both backends.</summary>
    public Both Upload(int[] data, params long[] dims)
    {
        var pair = Allocate(DType.I32, dims);
        Reference.CopyFromHost<int>(pair.Reference, data);
        Candidate.CopyFromHost<int>(pair.Candidate, data);
        return pair;
    }

    /// <summary>An output filled with NaN on both sides, so an element a kernel forgets to write cannot pass.</summary>
    public Both Poisoned(params long[] dims)
    {
        var pair = Allocate(DType.F32, dims);
        Reference.Fill(pair.Reference, float.NaN);
        Candidate.Fill(pair.Candidate, float.NaN);
        return pair;
    }

    /// <summary>Runs <paramref name="op"/> on the reference, then on the candidate; <c>pick</c> selects each side's tensor.</summary>
    public void Run(Action<Backend, Func<Both, Tensor>> op)
    {
        op(Reference, t => t.Reference);
        op(Candidate, t => t.Candidate);
    }

    /// <summary>Runs <paramref name="op"/> on the reference, then on the candidate, and returns what each returned (statistics).</summary>
    public (T Reference, T Candidate) Run<T>(Func<Backend, Func<Both, Tensor>, T> op) =>
        (op(Reference, t => t.Reference), op(Candidate, t => t.Candidate));

    /// <summary>Both sides of a tensor as host arrays.</summary>
    public (float[] Reference, float[] Candidate) Download(Both t)
    {
        var r = new float[t.Reference.ElementCount];
        var c = new float[t.Candidate.ElementCount];
        Reference.Synchronize();
        Candidate.Synchronize();
        Reference.CopyToHost<float>(t.Reference, r);
        Candidate.CopyToHost<float>(t.Candidate, c);
        return (r, c);
    }

    /// <summary>‖candidate − reference‖ / ‖reference‖ of one output (∞ when the candidate has a non-finite element the reference has not).</summary>
    public ConformanceResult Compare(string what, Both t, double tolerance)
    {
        var (r, c) = Download(t);
        return new ConformanceResult(what, RelativeError(r, c), tolerance);
    }

    /// <summary>Whether the two sides hold the same bits (the error reported is the fraction of elements that differ).</summary>
    public ConformanceResult CompareBits(string what, Both t)
    {
        var (r, c) = Download(t);
        int differ = 0;
        for (int i = 0; i < r.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(r[i]) != BitConverter.SingleToInt32Bits(c[i]))
            {
                differ++;
            }
        }

        return new ConformanceResult(what + " (bits)", r.Length == 0 ? 0 : differ / (double)r.Length, 0);
    }

    /// <summary>
    /// The relative error of two scalars, |c − r| / max(|r|, <paramref name="floor"/>): the floor keeps a statistic whose
    /// true value is 0 (a clip fraction, an empty mean) from turning rounding noise into an unbounded relative error.
    /// </summary>
    public static ConformanceResult CompareScalar(string what, double reference, double candidate, double tolerance, double floor = 1e-30) =>
        new(what, double.IsFinite(candidate) || !double.IsFinite(reference)
            ? (candidate == reference ? 0 : Math.Abs(candidate - reference) / Math.Max(Math.Abs(reference), floor))
            : double.PositiveInfinity, tolerance);

    /// <summary>‖c − r‖ / ‖r‖ in double; 0 when both are zero; ∞ for a non-finite candidate element where the reference is finite.</summary>
    public static double RelativeError(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate)
    {
        if (reference.Length != candidate.Length)
        {
            return double.PositiveInfinity;
        }

        double num = 0, den = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            if (!float.IsFinite(candidate[i]) && float.IsFinite(reference[i]))
            {
                return double.PositiveInfinity;
            }

            double d = (double)candidate[i] - reference[i];
            num += d * d;
            den += (double)reference[i] * reference[i];
        }

        return num == 0 ? 0 : Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-30);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var buffer in owned)
        {
            buffer.Dispose();
        }

        owned.Clear();
    }

    private Both Allocate(DType dtype, long[] dims)
    {
        var r = Reference.AllocateTensor(dtype, dims);
        owned.Add(r.Buffer!);
        var c = Candidate.AllocateTensor(dtype, dims);
        owned.Add(c.Buffer!);
        return new Both(r, c);
    }
}

/// <summary>One compared output: its name, relative error and the tolerance it must meet.</summary>
public sealed record ConformanceResult(string What, double RelativeError, double Tolerance)
{
    /// <summary>Whether the error is within tolerance (NaN fails).</summary>
    public bool Passed => RelativeError <= Tolerance;

    /// <inheritdoc/>
    public override string ToString() => $"{What}: relative error {RelativeError:E2} (tolerance {Tolerance:E0}) {(Passed ? "ok" : "FAIL")}";
}
