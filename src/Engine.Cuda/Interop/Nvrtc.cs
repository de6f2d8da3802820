using System.Runtime.InteropServices;

namespace Engine.Cuda.Interop;

/// <summary>Status codes of NVRTC (<c>nvrtcResult</c>).</summary>
internal enum NvrtcResult
{
    Success = 0,
    OutOfMemory = 1,
    ProgramCreationFailure = 2,
    InvalidInput = 3,
    InvalidProgram = 4,
    InvalidOption = 5,
    Compilation = 6,
}

/// <summary>
/// The slice of NVRTC (<c>libnvrtc.so.*</c>) Engine uses: compile one source with in-memory headers to CUBIN or PTX.
/// <c>nvrtcGetCUBIN</c> exists from 11.1 and <c>nvrtcGetSupportedArchs</c> from 11.2; callers probe them with
/// <see cref="LibraryProbe.HasExport"/> before use.
/// </summary>
internal static unsafe partial class Nvrtc
{
    static Nvrtc() => NativeLibraries.Register();

    /// <summary>Throws <see cref="CudaException"/> for anything but success, with NVRTC's text for the status.</summary>
    public static void Check(NvrtcResult result, string call)
    {
        if (result != NvrtcResult.Success)
        {
            throw new CudaException(call, (int)result, NameOf(result), ErrorText(result));
        }
    }

    /// <summary>The enumerator name of a status, as in nvrtc.h.</summary>
    public static string NameOf(NvrtcResult result) => result switch
    {
        NvrtcResult.Success => "NVRTC_SUCCESS",
        NvrtcResult.OutOfMemory => "NVRTC_ERROR_OUT_OF_MEMORY",
        NvrtcResult.ProgramCreationFailure => "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        NvrtcResult.InvalidInput => "NVRTC_ERROR_INVALID_INPUT",
        NvrtcResult.InvalidProgram => "NVRTC_ERROR_INVALID_PROGRAM",
        NvrtcResult.InvalidOption => "NVRTC_ERROR_INVALID_OPTION",
        NvrtcResult.Compilation => "NVRTC_ERROR_COMPILATION",
        _ => $"nvrtcResult {(int)result}",
    };

    /// <summary>NVRTC's own description of a status.</summary>
    public static string ErrorText(NvrtcResult result)
    {
        nint text = nvrtcGetErrorString(result);
        return text == 0 ? "unknown error" : Marshal.PtrToStringUTF8(text) ?? "unknown error";
    }

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial nint nvrtcGetErrorString(NvrtcResult result);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcVersion(out int major, out int minor);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetNumSupportedArchs(out int count);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetSupportedArchs(int* archs);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcCreateProgram(
        out NvrtcProgram program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcDestroyProgram(ref NvrtcProgram program);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcCompileProgram(NvrtcProgram program, int optionCount, byte** options);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetProgramLogSize(NvrtcProgram program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetProgramLog(NvrtcProgram program, byte* log);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetPTXSize(NvrtcProgram program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetPTX(NvrtcProgram program, byte* ptx);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetCUBINSize(NvrtcProgram program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcGetCUBIN(NvrtcProgram program, byte* cubin);
}
