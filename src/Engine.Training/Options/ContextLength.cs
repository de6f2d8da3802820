namespace Engine.Training.Options;

/// <summary>
/// The <c>max_length</c> a run uses when the user left it at its default: the default, or the model's context when that is
/// shorter (as TRL truncates to its default but never past what the model takes). A value the user set is kept as given,
/// so one beyond the context still fails with the error naming the key.
/// </summary>
public static class ContextLength
{
    /// <summary>
    /// <paramref name="options"/> with <c>max_length</c> cut to <paramref name="context"/> when it was not set
    /// (<paramref name="set"/> false) and does not fit; <paramref name="note"/> receives one line saying so.
    /// </summary>
    public static T Fit<T>(T options, int context, bool set, Action<string> note)
        where T : TrainerOptions
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(note);
        if (set || options.MaxLength <= context)
        {
            return options;
        }

        note($"max_length {context} (the model's context; the default {options.MaxLength} does not fit)");
        return options with { MaxLength = context };
    }
}
