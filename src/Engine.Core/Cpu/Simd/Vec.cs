using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Core.Cpu.Simd;

/// <summary>
/// A float vector of one width, so a kernel is written once as a generic method and instantiated for
/// <see cref="V512"/>, <see cref="V256"/>, <see cref="V128"/> and the one-lane <see cref="V1"/> (rows shorter than
/// four floats). The wrappers hold a single SIMD field, which the JIT keeps in a register after inlining.
/// </summary>
/// <typeparam name="TSelf">The implementing width.</typeparam>
internal unsafe interface IVec<TSelf>
    where TSelf : unmanaged, IVec<TSelf>
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Count { get; }

    /// <summary>Every lane set to <paramref name="value"/>.</summary>
    static abstract TSelf Create(float value);

    /// <summary>Unaligned load of <see cref="Count"/> floats.</summary>
    static abstract TSelf Load(float* p);

    /// <summary>Unaligned store of <see cref="Count"/> floats.</summary>
    static abstract void Store(float* p, TSelf v);

    /// <summary>Lane-wise sum.</summary>
    static abstract TSelf operator +(TSelf a, TSelf b);

    /// <summary>Lane-wise difference.</summary>
    static abstract TSelf operator -(TSelf a, TSelf b);

    /// <summary>Lane-wise product.</summary>
    static abstract TSelf operator *(TSelf a, TSelf b);

    /// <summary>Lane-wise quotient.</summary>
    static abstract TSelf operator /(TSelf a, TSelf b);

    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TSelf MulAdd(TSelf a, TSelf b, TSelf c);

    /// <summary>Lane-wise eᵛ.</summary>
    static abstract TSelf Exp(TSelf v);

    /// <summary>Lane-wise √v.</summary>
    static abstract TSelf Sqrt(TSelf v);

    /// <summary>Lane-wise maximum.</summary>
    static abstract TSelf Max(TSelf a, TSelf b);

    /// <summary>Lane-wise minimum.</summary>
    static abstract TSelf Min(TSelf a, TSelf b);

    /// <summary>Sum of the lanes.</summary>
    static abstract float Sum(TSelf v);

    /// <summary>Largest lane.</summary>
    static abstract float MaxAcross(TSelf v);

    /// <summary>
    /// A lane mask selecting the last <paramref name="lanes"/> lanes: the elements a tail vector loaded at
    /// <c>n − Count</c> adds beyond the last full vector.
    /// </summary>
    static abstract TSelf TailMask(int lanes);

    /// <summary>Lanes of <paramref name="a"/> where <paramref name="mask"/> is set, else of <paramref name="b"/>.</summary>
    static abstract TSelf Select(TSelf mask, TSelf a, TSelf b);
}

/// <summary>Which vector width a row of a given length runs at.</summary>
internal enum VecWidth
{
    /// <summary>Scalar (<see cref="V1"/>).</summary>
    W1,

    /// <summary><see cref="V128"/>.</summary>
    W128,

    /// <summary><see cref="V256"/>.</summary>
    W256,

    /// <summary><see cref="V512"/>.</summary>
    W512,
}

/// <summary>Width selection shared by the kernels.</summary>
internal static class Vec
{
    /// <summary>
    /// The widest accelerated vector no longer than <paramref name="length"/>, so tails can be finished with one
    /// overlapping (masked) vector instead of a scalar loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VecWidth Pick(long length)
    {
        if (Vector512.IsHardwareAccelerated && length >= Vector512<float>.Count)
        {
            return VecWidth.W512;
        }

        if (Vector256.IsHardwareAccelerated && length >= Vector256<float>.Count)
        {
            return VecWidth.W256;
        }

        return length >= Vector128<float>.Count ? VecWidth.W128 : VecWidth.W1;
    }
}

/// <summary>512-bit vector of 16 floats.</summary>
internal readonly unsafe struct V512 : IVec<V512>
{
    private readonly Vector512<float> v;

    private V512(Vector512<float> v) => this.v = v;

    /// <inheritdoc/>
    public static int Count => Vector512<float>.Count;

    /// <inheritdoc/>
    public static V512 Create(float value) => new(Vector512.Create(value));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Load(float* p) => new(Vector512.Load(p));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, V512 v) => v.v.Store(p);

    /// <inheritdoc/>
    public static V512 operator +(V512 a, V512 b) => new(a.v + b.v);

    /// <inheritdoc/>
    public static V512 operator -(V512 a, V512 b) => new(a.v - b.v);

    /// <inheritdoc/>
    public static V512 operator *(V512 a, V512 b) => new(a.v * b.v);

    /// <inheritdoc/>
    public static V512 operator /(V512 a, V512 b) => new(a.v / b.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 MulAdd(V512 a, V512 b, V512 c) => new(Vector512.MultiplyAddEstimate(a.v, b.v, c.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Exp(V512 v) => new(Vector512.Exp(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Sqrt(V512 v) => new(Vector512.Sqrt(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Max(V512 a, V512 b) => new(Vector512.Max(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Min(V512 a, V512 b) => new(Vector512.Min(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(V512 v) => Vector512.Sum(v.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V512 v)
    {
        var m = Vector256.Max(v.v.GetLower(), v.v.GetUpper());
        var q = Vector128.Max(m.GetLower(), m.GetUpper());
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 TailMask(int lanes) =>
        new(Vector512.GreaterThanOrEqual(Vector512<float>.Indices, Vector512.Create((float)(Count - lanes))));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Select(V512 mask, V512 a, V512 b) => new(Vector512.ConditionalSelect(mask.v, a.v, b.v));
}

/// <summary>256-bit vector of 8 floats.</summary>
internal readonly unsafe struct V256 : IVec<V256>
{
    private readonly Vector256<float> v;

    private V256(Vector256<float> v) => this.v = v;

    /// <inheritdoc/>
    public static int Count => Vector256<float>.Count;

    /// <inheritdoc/>
    public static V256 Create(float value) => new(Vector256.Create(value));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Load(float* p) => new(Vector256.Load(p));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, V256 v) => v.v.Store(p);

    /// <inheritdoc/>
    public static V256 operator +(V256 a, V256 b) => new(a.v + b.v);

    /// <inheritdoc/>
    public static V256 operator -(V256 a, V256 b) => new(a.v - b.v);

    /// <inheritdoc/>
    public static V256 operator *(V256 a, V256 b) => new(a.v * b.v);

    /// <inheritdoc/>
    public static V256 operator /(V256 a, V256 b) => new(a.v / b.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 MulAdd(V256 a, V256 b, V256 c) => new(Vector256.MultiplyAddEstimate(a.v, b.v, c.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Exp(V256 v) => new(Vector256.Exp(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Sqrt(V256 v) => new(Vector256.Sqrt(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Max(V256 a, V256 b) => new(Vector256.Max(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Min(V256 a, V256 b) => new(Vector256.Min(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(V256 v) => Vector256.Sum(v.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V256 v)
    {
        var q = Vector128.Max(v.v.GetLower(), v.v.GetUpper());
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 TailMask(int lanes) =>
        new(Vector256.GreaterThanOrEqual(Vector256<float>.Indices, Vector256.Create((float)(Count - lanes))));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Select(V256 mask, V256 a, V256 b) => new(Vector256.ConditionalSelect(mask.v, a.v, b.v));
}

/// <summary>128-bit vector of 4 floats (SSE/NEON; software-emulated, still correct, elsewhere).</summary>
internal readonly unsafe struct V128 : IVec<V128>
{
    private readonly Vector128<float> v;

    private V128(Vector128<float> v) => this.v = v;

    /// <inheritdoc/>
    public static int Count => Vector128<float>.Count;

    /// <inheritdoc/>
    public static V128 Create(float value) => new(Vector128.Create(value));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Load(float* p) => new(Vector128.Load(p));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, V128 v) => v.v.Store(p);

    /// <inheritdoc/>
    public static V128 operator +(V128 a, V128 b) => new(a.v + b.v);

    /// <inheritdoc/>
    public static V128 operator -(V128 a, V128 b) => new(a.v - b.v);

    /// <inheritdoc/>
    public static V128 operator *(V128 a, V128 b) => new(a.v * b.v);

    /// <inheritdoc/>
    public static V128 operator /(V128 a, V128 b) => new(a.v / b.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 MulAdd(V128 a, V128 b, V128 c) => new(Vector128.MultiplyAddEstimate(a.v, b.v, c.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Exp(V128 v) => new(Vector128.Exp(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Sqrt(V128 v) => new(Vector128.Sqrt(v.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Max(V128 a, V128 b) => new(Vector128.Max(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Min(V128 a, V128 b) => new(Vector128.Min(a.v, b.v));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(V128 v) => Vector128.Sum(v.v);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V128 v)
    {
        var q = Vector128.Max(v.v, Vector128.Shuffle(v.v, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 TailMask(int lanes) =>
        new(Vector128.GreaterThanOrEqual(Vector128<float>.Indices, Vector128.Create((float)(Count - lanes))));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Select(V128 mask, V128 a, V128 b) => new(Vector128.ConditionalSelect(mask.v, a.v, b.v));
}

/// <summary>One float: the same kernels for rows too short for a vector.</summary>
internal readonly unsafe struct V1 : IVec<V1>
{
    private readonly float v;

    private V1(float v) => this.v = v;

    /// <inheritdoc/>
    public static int Count => 1;

    /// <inheritdoc/>
    public static V1 Create(float value) => new(value);

    /// <inheritdoc/>
    public static V1 Load(float* p) => new(*p);

    /// <inheritdoc/>
    public static void Store(float* p, V1 v) => *p = v.v;

    /// <inheritdoc/>
    public static V1 operator +(V1 a, V1 b) => new(a.v + b.v);

    /// <inheritdoc/>
    public static V1 operator -(V1 a, V1 b) => new(a.v - b.v);

    /// <inheritdoc/>
    public static V1 operator *(V1 a, V1 b) => new(a.v * b.v);

    /// <inheritdoc/>
    public static V1 operator /(V1 a, V1 b) => new(a.v / b.v);

    /// <inheritdoc/>
    public static V1 MulAdd(V1 a, V1 b, V1 c) => new(float.MultiplyAddEstimate(a.v, b.v, c.v));

    /// <inheritdoc/>
    public static V1 Exp(V1 v) => new(MathF.Exp(v.v));

    /// <inheritdoc/>
    public static V1 Sqrt(V1 v) => new(MathF.Sqrt(v.v));

    /// <inheritdoc/>
    public static V1 Max(V1 a, V1 b) => new(MathF.Max(a.v, b.v));

    /// <inheritdoc/>
    public static V1 Min(V1 a, V1 b) => new(MathF.Min(a.v, b.v));

    /// <inheritdoc/>
    public static float Sum(V1 v) => v.v;

    /// <inheritdoc/>
    public static float MaxAcross(V1 v) => v.v;

    /// <inheritdoc/>
    public static V1 TailMask(int lanes) => new(lanes > 0 ? BitConverter.Int32BitsToSingle(-1) : 0f);

    /// <inheritdoc/>
    public static V1 Select(V1 mask, V1 a, V1 b) => BitConverter.SingleToInt32Bits(mask.v) != 0 ? a : b;
}
