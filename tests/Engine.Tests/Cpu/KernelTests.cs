using Engine.Core.Cpu;

namespace Engine.Tests.Cpu;

/// <summary>Small helpers shared by the CPU kernel tests.</summary>
internal static class KernelTests
{
    /// <summary>Σ a[i]·b[i] in double: a scalar loss that projects an output onto fixed weights.</summary>
    public static double Dot(double[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }
}
