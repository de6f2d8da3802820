using Engine.Core.Tensors;

namespace Engine.Models.Formats;

/// <summary>Element types a safetensors header may name (the reference implementation's set).</summary>
public enum SafetensorsDType
{
    /// <summary>Boolean, one byte.</summary>
    BOOL,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>8-bit float, 5 exponent bits and 2 mantissa bits.</summary>
    F8_E5M2,
    /// <summary>8-bit float, 4 exponent bits and 3 mantissa bits.</summary>
    F8_E4M3,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>IEEE-754 half precision.</summary>
    F16,
    /// <summary>bfloat16: the upper half of an IEEE-754 single.</summary>
    BF16,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>IEEE-754 single precision.</summary>
    F32,
    /// <summary>IEEE-754 double precision.</summary>
    F64,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
}

/// <summary>Facts about <see cref="SafetensorsDType"/> values.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Size of one element in bytes.</summary>
    public static int SizeOf(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E4M3 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown safetensors dtype"),
    };

    /// <summary>The header spelling (<c>F32</c>, <c>BF16</c>, <c>F8_E4M3</c>, …).</summary>
    public static string HeaderName(this SafetensorsDType dtype) => dtype.ToString();

    /// <summary>Parses a header spelling; exact, case-sensitive match as in the reference implementation.</summary>
    public static bool TryParse(string text, out SafetensorsDType dtype)
    {
        switch (text)
        {
            case "BOOL": dtype = SafetensorsDType.BOOL; return true;
            case "U8": dtype = SafetensorsDType.U8; return true;
            case "I8": dtype = SafetensorsDType.I8; return true;
            case "F8_E5M2": dtype = SafetensorsDType.F8_E5M2; return true;
            case "F8_E4M3": dtype = SafetensorsDType.F8_E4M3; return true;
            case "I16": dtype = SafetensorsDType.I16; return true;
            case "U16": dtype = SafetensorsDType.U16; return true;
            case "F16": dtype = SafetensorsDType.F16; return true;
            case "BF16": dtype = SafetensorsDType.BF16; return true;
            case "I32": dtype = SafetensorsDType.I32; return true;
            case "U32": dtype = SafetensorsDType.U32; return true;
            case "F32": dtype = SafetensorsDType.F32; return true;
            case "F64": dtype = SafetensorsDType.F64; return true;
            case "I64": dtype = SafetensorsDType.I64; return true;
            case "U64": dtype = SafetensorsDType.U64; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>
    /// The weight storage types a checkpoint may be loaded from and saved in: F32, BF16 and F16 (every other dtype is
    /// not a float type a model's weights are kept in).
    /// </summary>
    public static bool IsWeightStorage(this SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16;

    /// <summary>The <c>torch_dtype</c> spelling of a weight storage type (<c>float32</c>, <c>bfloat16</c>, <c>float16</c>).</summary>
    public static string TorchName(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => "float32",
        SafetensorsDType.BF16 => "bfloat16",
        SafetensorsDType.F16 => "float16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a weight storage type (F32, BF16, F16)"),
    };

    /// <summary>
    /// Parses a weight storage type as users write it: <c>fp32</c>, <c>bf16</c>, <c>fp16</c> (the <c>--save-dtype</c>
    /// spellings) or the <c>torch_dtype</c> names <c>float32</c>, <c>bfloat16</c>, <c>float16</c>; case-insensitive.
    /// </summary>
    public static bool TryParseStorage(string? text, out SafetensorsDType dtype)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "fp32" or "f32" or "float32": dtype = SafetensorsDType.F32; return true;
            case "bf16" or "bfloat16": dtype = SafetensorsDType.BF16; return true;
            case "fp16" or "f16" or "float16" or "half": dtype = SafetensorsDType.F16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The engine dtype with the same storage, if there is one (F32, BF16, F16, I32).</summary>
    public static bool TryToEngine(this SafetensorsDType dtype, out DType engine)
    {
        switch (dtype)
        {
            case SafetensorsDType.F32: engine = DType.F32; return true;
            case SafetensorsDType.BF16: engine = DType.BF16; return true;
            case SafetensorsDType.F16: engine = DType.F16; return true;
            case SafetensorsDType.I32: engine = DType.I32; return true;
            default: engine = default; return false;
        }
    }
}
