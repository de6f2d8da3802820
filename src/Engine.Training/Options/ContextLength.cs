namespace Engine.Training.Options;

/// <summary>
/// The <c>max_length</c> a run uses when the user left it at its default: the default, or the model's context when that is
/// shorter (as TRL truncates to its default but never past what the model takes). A sampling trainer's generated length
/// (<see cref="GeneratedLength{T}"/>) left at a default that leaves no room for a prompt within that <c>max_length</c> is
/// lowered to half of it. A value the user set is kept as given, so one that does not fit still fails with the error naming the key.
/// </summary>
public static class ContextLength
{
    /// <summary>
    /// <paramref name="options"/> with <c>max_length</c> cut to <paramref name="context"/> when it was not set
    /// (<paramref name="sets"/> tells whether the user set a key) and does not fit, then <paramref name="generated"/>'s
    /// length, when not set and at least <c>max_length</c>, lowered to <c>max_length / 2</c>; <paramref name="note"/>
    /// receives one line saying what changed.
    /// </summary>
    public static T Fit<T>(T options, int context, Func<string, bool> sets, Action<string> note, GeneratedLength<T>? generated = null)
        where T : TrainerOptions
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(sets);
        ArgumentNullException.ThrowIfNull(note);
        var changes = new List<string>(2);
        if (options.MaxLength > context && !sets("max_length"))
        {
            changes.Add($"max_length {context} (the model's context; the default {options.MaxLength} does not fit)");
            options = options with { MaxLength = context };
        }

        if (generated is not null && generated.Get(options) >= options.MaxLength && !sets(generated.Key))
        {
            int half = Math.Max(1, options.MaxLength / 2);
            changes.Add($"{generated.Key} {half} (half of max_length; the default {generated.Get(options)} leaves no room for a prompt)");
            options = generated.With(options, half);
        }

        if (changes.Count > 0)
        {
            note(string.Join(", ", changes));
        }

        return options;
    }
}
