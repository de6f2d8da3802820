using Xunit.Sdk;

namespace Engine.Tests.Support;

/// <summary>Closeness assertions with messages that name the first bad index.</summary>
public static class Approx
{
    /// <summary>Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise, and that actual has no NaN/Inf.</summary>
    public static void Equal(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float atol = 1e-5f, float rtol = 1e-4f, string what = "")
    {
        if (expected.Length != actual.Length)
        {
            throw new XunitException($"{what}: length {actual.Length}, expected {expected.Length}");
        }

        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (!float.IsFinite(a) && float.IsFinite(e))
            {
                throw new XunitException($"{what}: element {i} is {a}, expected {e}");
            }

            double err = Math.Abs((double)a - e) - (atol + (rtol * Math.Abs(e)));
            if (err > worst)
            {
                worst = err;
                worstAt = i;
            }
        }

        if (worstAt >= 0)
        {
            throw new XunitException(
                $"{what}: element {worstAt} is {actual[worstAt]:R}, expected {expected[worstAt]:R} (atol {atol}, rtol {rtol})");
        }
    }

    /// <summary>Asserts ‖actual − expected‖ / ‖expected‖ ≤ tolerance (for large tensors, e.g. gradients).</summary>
    public static void RelativeNorm(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what = "")
    {
        if (expected.Length != actual.Length)
        {
            throw new XunitException($"{what}: length {actual.Length}, expected {expected.Length}");
        }

        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }

        double rel = Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-30);
        if (!(rel <= tolerance))
        {
            throw new XunitException($"{what}: relative error {rel:E3} exceeds {tolerance:E1}");
        }
    }

    /// <summary>Asserts the two spans hold the same bits.</summary>
    public static void BitEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what = "")
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                throw new XunitException($"{what}: element {i} differs: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }
}
