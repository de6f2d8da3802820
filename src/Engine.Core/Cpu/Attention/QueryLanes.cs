using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// One vector of score lanes, one lane per query of a query tile. The kernels are written once over this interface and
/// the JIT specialises them for <see cref="Lanes512"/> (16 queries) or <see cref="Lanes256"/> (8 queries).
/// </summary>
/// <typeparam name="TSelf">The implementing struct.</typeparam>
internal unsafe interface IQueryLanes<TSelf>
    where TSelf : struct, IQueryLanes<TSelf>
{
    /// <summary>Lanes per vector: the query tile size.</summary>
    static abstract int Count { get; }

    /// <summary>Every lane set to <paramref name="value"/>.</summary>
    static abstract TSelf Create(float value);

    /// <summary>Loads <see cref="Count"/> floats.</summary>
    static abstract TSelf Load(float* p);

    /// <summary>Stores <see cref="Count"/> floats.</summary>
    static abstract void Store(TSelf v, float* p);

    /// <summary>a·b + c (fused where the hardware has FMA).</summary>
    static abstract TSelf MulAdd(TSelf a, TSelf b, TSelf c);

    /// <summary>a + b.</summary>
    static abstract TSelf Add(TSelf a, TSelf b);

    /// <summary>a − b.</summary>
    static abstract TSelf Subtract(TSelf a, TSelf b);

    /// <summary>a·b.</summary>
    static abstract TSelf Multiply(TSelf a, TSelf b);

    /// <summary>Lane-wise maximum.</summary>
    static abstract TSelf Max(TSelf a, TSelf b);

    /// <summary>Lane-wise eˣ (exactly 0 for −∞).</summary>
    static abstract TSelf Exp(TSelf v);

    /// <summary>Lanes below <paramref name="lanes"/> set to −∞: queries that come before a key may not see it.</summary>
    static abstract TSelf MaskBefore(TSelf v, int lanes);
}

/// <summary>Sixteen query lanes in an AVX-512 register.</summary>
internal unsafe struct Lanes512 : IQueryLanes<Lanes512>
{
    private Vector512<float> v;

    private Lanes512(Vector512<float> value) => v = value;

    public static int Count => Vector512<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Create(float value) => new(Vector512.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Load(float* p) => new(Vector512.Load(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Lanes512 v, float* p) => v.v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 MulAdd(Lanes512 a, Lanes512 b, Lanes512 c) => new(Vector512.MultiplyAddEstimate(a.v, b.v, c.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Add(Lanes512 a, Lanes512 b) => new(a.v + b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Subtract(Lanes512 a, Lanes512 b) => new(a.v - b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Multiply(Lanes512 a, Lanes512 b) => new(a.v * b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Max(Lanes512 a, Lanes512 b) => new(Vector512.Max(a.v, b.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Exp(Lanes512 v) => new(Vector512.Exp(v.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 MaskBefore(Lanes512 v, int lanes) =>
        new(Vector512.ConditionalSelect(
            Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(lanes)).AsSingle(),
            Vector512.Create(float.NegativeInfinity),
            v.v));
}

/// <summary>Eight query lanes in a 256-bit register (AVX2, or emulated where the hardware is narrower).</summary>
internal unsafe struct Lanes256 : IQueryLanes<Lanes256>
{
    private Vector256<float> v;

    private Lanes256(Vector256<float> value) => v = value;

    public static int Count => Vector256<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Create(float value) => new(Vector256.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Load(float* p) => new(Vector256.Load(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Lanes256 v, float* p) => v.v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 MulAdd(Lanes256 a, Lanes256 b, Lanes256 c) => new(Vector256.MultiplyAddEstimate(a.v, b.v, c.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Add(Lanes256 a, Lanes256 b) => new(a.v + b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Subtract(Lanes256 a, Lanes256 b) => new(a.v - b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Multiply(Lanes256 a, Lanes256 b) => new(a.v * b.v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Max(Lanes256 a, Lanes256 b) => new(Vector256.Max(a.v, b.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Exp(Lanes256 v) => new(Vector256.Exp(v.v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 MaskBefore(Lanes256 v, int lanes) =>
        new(Vector256.ConditionalSelect(
            Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(lanes)).AsSingle(),
            Vector256.Create(float.NegativeInfinity),
            v.v));
}
