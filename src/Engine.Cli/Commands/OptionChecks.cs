using Engine.Training.Options;

namespace Engine.Cli.Commands;

/// <summary>Checks of option records read from the user (a --config file, --set overrides, flags) before any work starts.</summary>
internal static class OptionChecks
{
    /// <summary>Where options come from when there is no --config file.</summary>
    public const string FlagsSource = "options (flags and --set)";

    /// <summary>
    /// Runs an options record's <c>Validate</c>; the <see cref="ArgumentException"/> it throws for a value out of range
    /// (its message names the key) becomes an <see cref="OptionsException"/> naming <paramref name="source"/>, the --config
    /// file, or <see cref="FlagsSource"/> when null.
    /// </summary>
    public static void Validate(Action validate, string? source)
    {
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            throw new OptionsException(source ?? FlagsSource, 0, null, e.Message, e);
        }
    }
}
