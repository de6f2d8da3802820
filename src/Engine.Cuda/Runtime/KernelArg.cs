using Engine.Core.Tensors;

namespace Engine.Cuda.Runtime;

/// <summary>
/// One kernel argument: its value in the low bytes of an 8-byte slot (what <c>cuLaunchKernel</c> reads through the
/// pointer it is given) and its kind letter, checked against the kernel's <see cref="KernelSignature"/> at launch.
/// The value is the first field, so a pointer to the struct is a pointer to the value.
/// </summary>
internal readonly struct KernelArg
{
    public readonly ulong Bits;
    public readonly char Kind;

    private KernelArg(ulong bits, char kind)
    {
        Bits = bits;
        Kind = kind;
    }

    /// <summary>A tensor's device address (null for the empty tensor, which kernels read as "not wanted").</summary>
    public static implicit operator KernelArg(Tensor tensor) => new((ulong)tensor.Address, 'p');

    public static implicit operator KernelArg(int value) => new((ulong)(long)value, 'i');

    public static implicit operator KernelArg(uint value) => new(value, 'I');

    public static implicit operator KernelArg(long value) => new((ulong)value, 'l');

    public static implicit operator KernelArg(ulong value) => new(value, 'u');

    public static implicit operator KernelArg(float value) => new(BitConverter.SingleToUInt32Bits(value), 'f');

    /// <summary>A raw device address.</summary>
    public static KernelArg Pointer(nint address) => new((ulong)address, 'p');
}

/// <summary>Grid or block dimensions of a launch.</summary>
internal readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    /// <summary>⌈n / d⌉ as a grid dimension; throws past the 2³¹−1 limit of gridDim.x.</summary>
    public static uint Blocks(long n, int d)
    {
        long blocks = (n + d - 1) / d;
        if (blocks is < 1 or > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(n), $"{n} elements need {blocks} blocks of {d}, outside the grid limit");
        }

        return (uint)blocks;
    }
}
