using Xunit;

namespace Engine.Tests.Lora;

/// <summary>A fact that needs Debian's /usr/bin/python3 (the independent reader scripts); skipped with the reason where it is missing.</summary>
public sealed class PythonFactAttribute : FactAttribute
{
    /// <summary>The interpreter the fixture scripts run under.</summary>
    public const string Python = "/usr/bin/python3";

    public PythonFactAttribute()
    {
        if (!File.Exists(Python))
        {
            Skip = $"{Python} is not installed: the independent adapter reader cannot run";
        }
    }
}
