using Engine.Core;
using Engine.Core.Backends;

namespace Engine.Training.Rl.Rewards;

/// <summary>What building a reward from its command-line spec may need besides the spec itself.</summary>
/// <param name="Backend">The backend a reward model is loaded on.</param>
/// <param name="MaxCompletionLength">The longest completion the trainer samples, in tokens.</param>
public sealed record RewardSpecContext(Backend Backend, int MaxCompletionLength);

/// <summary>
/// The built-in rewards by their command-line spec, <c>NAME[:ARGUMENT]</c> (<c>--reward format:REGEX</c>).
/// </summary>
public static class RewardSpecs
{
    /// <summary>The names of the built-in rewards, with what their argument is.</summary>
    public static IReadOnlyList<(string Name, string Argument)> BuiltIn { get; } =
    [
        ("format", "a regular expression the whole completion must match"),
    ];

    /// <summary>The reward <paramref name="spec"/> names, built with <paramref name="context"/>.</summary>
    /// <exception cref="InputException">An unknown name or an argument the reward cannot use (names <c>--reward</c>).</exception>
    public static IRewardFunction Parse(string spec, RewardSpecContext context)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(context);
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        string name = colon < 0 ? spec : spec[..colon];
        string argument = colon < 0 ? "" : spec[(colon + 1)..];
        try
        {
            return name switch
            {
                "format" => new FormatReward(Required(argument, name)),
                _ => throw new InputException("--reward", null, null,
                    $"'{spec}': unknown reward '{name}' (built in: {string.Join(", ", BuiltIn.Select(b => b.Name))})"),
            };
        }
        catch (ArgumentException e)
        {
            throw new InputException("--reward", null, null, $"'{spec}': {e.Message}", e);
        }
    }

    private static string Required(string argument, string name) =>
        argument.Length > 0 ? argument : throw new ArgumentException($"'{name}' needs an argument: {BuiltIn.First(b => b.Name == name).Argument}");
}
