using System.Diagnostics;
using Engine.Core.Backends;

namespace Engine.Models;

/// <summary>Op families timed by <see cref="OpProfiler"/>.</summary>
public enum OpKind
{
    /// <summary>Token and position embeddings.</summary>
    Embedding,
    /// <summary>LayerNorm / RMSNorm.</summary>
    Norm,
    /// <summary>Linear layers (GEMMs), the LM head included.</summary>
    Matmul,
    /// <summary>RoPE.</summary>
    Rope,
    /// <summary>Causal self-attention.</summary>
    Attention,
    /// <summary>GELU / SwiGLU.</summary>
    Activation,
    /// <summary>Residual adds and gradient accumulation.</summary>
    Residual,
    /// <summary>Softmax cross-entropy.</summary>
    Loss,
    /// <summary>Gradient norm, clipping and AdamW.</summary>
    Optimizer,
}

/// <summary>
/// Accumulates wall time per op family and direction, like Llm.cs's per-op table. Disabled by default; when enabled
/// each timed region synchronises the backend so asynchronous devices are timed honestly. No allocation per region.
/// </summary>
public sealed class OpProfiler
{
    private static readonly int KindCount = Enum.GetValues<OpKind>().Length;
    private readonly long[] ticks = new long[KindCount * 2];
    private readonly long[] calls = new long[KindCount * 2];
    private readonly Backend backend;

    /// <summary>Creates a disabled profiler for ops run on <paramref name="backend"/>.</summary>
    public OpProfiler(Backend backend) => this.backend = backend;

    /// <summary>Whether regions are timed.</summary>
    public bool Enabled { get; set; }

    /// <summary>Starts a region; returns the start timestamp (0 when disabled).</summary>
    public long Begin()
    {
        if (!Enabled)
        {
            return 0;
        }

        backend.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Ends a region begun at <paramref name="start"/>, charging it to <paramref name="kind"/>.</summary>
    public void End(long start, OpKind kind, bool backward)
    {
        if (!Enabled)
        {
            return;
        }

        backend.Synchronize();
        int slot = ((int)kind * 2) + (backward ? 1 : 0);
        ticks[slot] += Stopwatch.GetTimestamp() - start;
        calls[slot]++;
    }

    /// <summary>Clears the accumulated times.</summary>
    public void Reset()
    {
        Array.Clear(ticks);
        Array.Clear(calls);
    }

    /// <summary>Accumulated (op, direction, milliseconds, calls) rows with any time, largest first.</summary>
    public IReadOnlyList<(OpKind Op, bool Backward, double Milliseconds, long Calls)> Rows()
    {
        var rows = new List<(OpKind, bool, double, long)>();
        for (int slot = 0; slot < ticks.Length; slot++)
        {
            if (calls[slot] > 0)
            {
                rows.Add(((OpKind)(slot / 2), slot % 2 == 1, ticks[slot] * 1000.0 / Stopwatch.Frequency, calls[slot]));
            }
        }

        rows.Sort((a, b) => b.Item3.CompareTo(a.Item3));
        return rows;
    }
}
