using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Tests.Support;

/// <summary>Seeded random inputs and host/device round trips for kernel tests.</summary>
public static class TestData
{
    /// <summary>Lengths every element-wise op is tested at: 0 to a few hundred, odd sizes and vector-width edges.</summary>
    public static readonly int[] Lengths = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 300, 513];

    /// <summary>Uniform floats in [lo, hi) from a fixed seed.</summary>
    public static float[] Uniform(int seed, int length, float lo = -1f, float hi = 1f)
    {
        var rng = new Random(seed);
        var a = new float[length];
        for (int i = 0; i < length; i++)
        {
            a[i] = lo + ((hi - lo) * (float)rng.NextDouble());
        }

        return a;
    }

    /// <summary>Integers in [0, max) from a fixed seed.</summary>
    public static int[] Tokens(int seed, int length, int max)
    {
        var rng = new Random(seed);
        var a = new int[length];
        for (int i = 0; i < length; i++)
        {
            a[i] = rng.Next(max);
        }

        return a;
    }

    /// <summary>A tensor on <paramref name="backend"/> holding <paramref name="data"/>.</summary>
    public static Tensor Upload(Backend backend, float[] data, params long[] dims)
    {
        var t = backend.AllocateTensor(DType.F32, dims);
        backend.CopyFromHost<float>(t, data);
        return t;
    }

    /// <summary>An i32 tensor on <paramref name="backend"/> holding <paramref name="data"/>.</summary>
    public static Tensor Upload(Backend backend, int[] data, params long[] dims)
    {
        var t = backend.AllocateTensor(DType.I32, dims);
        backend.CopyFromHost<int>(t, data);
        return t;
    }

    /// <summary>The tensor's contents copied to a new host array.</summary>
    public static float[] Download(Backend backend, Tensor t)
    {
        var a = new float[t.ElementCount];
        backend.Synchronize();
        backend.CopyToHost<float>(t, a);
        return a;
    }

    /// <summary>CPU backends with 1, 2 and 3 threads, for checks that results do not depend on the thread count.</summary>
    public static IEnumerable<CpuBackend> ThreadVariants()
    {
        yield return new CpuBackend(1);
        yield return new CpuBackend(2);
        yield return new CpuBackend(3);
    }
}
