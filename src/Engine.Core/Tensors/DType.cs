namespace Engine.Core.Tensors;

/// <summary>Element type of a tensor. Nothing in the contract assumes 4-byte elements.</summary>
public enum DType
{
    /// <summary>IEEE-754 single precision.</summary>
    F32,
    /// <summary>bfloat16 storage (fp32 accumulation in kernels).</summary>
    BF16,
    /// <summary>IEEE-754 half precision storage.</summary>
    F16,
    /// <summary>32-bit signed integer (token ids, targets).</summary>
    I32,
}

/// <summary>Facts about <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Size of one element in bytes.</summary>
    public static int SizeOf(this DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Lower-case name as used in safetensors headers and error messages.</summary>
    public static string Name(this DType dtype) => dtype switch
    {
        DType.F32 => "f32",
        DType.BF16 => "bf16",
        DType.F16 => "f16",
        DType.I32 => "i32",
        _ => dtype.ToString(),
    };
}
