namespace Engine.Tests.Support;

/// <summary>Central finite differences of a scalar function of a float vector, evaluated in double where the caller can.</summary>
public static class FiniteDifference
{
    /// <summary>
    /// ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h for each i in <paramref name="indices"/> (all when null).
    /// <paramref name="x"/> is restored afterwards.
    /// </summary>
    public static double[] Gradient(Func<float[], double> f, float[] x, float h = 1e-2f, IReadOnlyList<int>? indices = null)
    {
        var grad = new double[x.Length];
        IEnumerable<int> which = indices ?? Enumerable.Range(0, x.Length);
        foreach (int i in which)
        {
            float saved = x[i];
            x[i] = saved + h;
            double plus = f(x);
            x[i] = saved - h;
            double minus = f(x);
            x[i] = saved;
            grad[i] = (plus - minus) / (2.0 * h);
        }

        return grad;
    }

    /// <summary>Asserts analytic and numeric gradients agree at the given indices within atol + rtol·|numeric|.</summary>
    public static void AssertClose(double[] numeric, ReadOnlySpan<float> analytic, double atol, double rtol, string what, IReadOnlyList<int>? indices = null)
    {
        IEnumerable<int> which = indices ?? Enumerable.Range(0, numeric.Length);
        foreach (int i in which)
        {
            double err = Math.Abs(analytic[i] - numeric[i]);
            if (err > atol + (rtol * Math.Abs(numeric[i])))
            {
                throw new Xunit.Sdk.XunitException($"{what}: d/dx[{i}] analytic {analytic[i]:R}, finite difference {numeric[i]:R}");
            }
        }
    }
}
