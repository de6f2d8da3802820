namespace Engine.Benchmarks;

/// <summary>One GEMM of a model: C[M,N] = op(A)·op(B), named after the layer and pass it comes from.</summary>
public sealed record GemmCase(string Name, int M, int N, int K, bool TransposeA, bool TransposeB)
{
    /// <summary>2·M·N·K.</summary>
    public double Flops => 2.0 * M * N * K;

    /// <summary>BLAS-style op letters, e.g. "NT".</summary>
    public string Ops => $"{(TransposeA ? 'T' : 'N')}{(TransposeB ? 'T' : 'N')}";

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// The linear layers of the two model configurations we train on the CPU (W stored [OC, C], PyTorch layout), each as its
/// forward product and the two backward products. Mirrors bench/reference/sgemm_openblas.py exactly.
/// </summary>
public static class GemmShapes
{
    private static readonly (string Label, int N, int C, int OC)[] Layers =
    [
        ("small qkv", 512, 256, 768),
        ("small attproj", 512, 256, 256),
        ("small fc", 512, 256, 1024),
        ("small fcproj", 512, 1024, 256),
        ("small lmhead", 512, 256, 8192),
        ("124M qkv", 256, 768, 2304),
        ("124M attproj", 256, 768, 768),
        ("124M fc", 256, 768, 3072),
        ("124M fcproj", 256, 3072, 768),
        ("124M lmhead", 256, 768, 50257),
    ];

    /// <summary>Forward out = inp·Wᵀ (NT), dinp = dout·W (NN) and dW = doutᵀ·inp (TN) of every layer.</summary>
    public static IEnumerable<GemmCase> All()
    {
        foreach (var (label, n, c, oc) in Layers)
        {
            yield return new GemmCase($"{label} fwd", n, oc, c, false, true);
            yield return new GemmCase($"{label} dinp", n, c, oc, false, false);
            yield return new GemmCase($"{label} dW", oc, c, n, true, false);
        }
    }
}
