using System.Globalization;
using Engine.Core;
using Engine.Core.Backends;

namespace Engine.Training.Rl.Rewards;

/// <summary>What building a reward from its command-line spec may need besides the spec itself.</summary>
/// <param name="Backend">The backend a reward model is loaded on.</param>
/// <param name="MaxCompletionLength">The longest completion the trainer samples, in tokens.</param>
public sealed record RewardSpecContext(Backend Backend, int MaxCompletionLength)
{
    /// <summary>The policy's vocabulary size, which a reward model must read (0 = not checked when loading).</summary>
    public int VocabularySize { get; init; }
}

/// <summary>
/// The built-in rewards by their command-line spec, <c>NAME[:ARGUMENT]</c> (<c>--reward format:REGEX</c>); only the
/// first colon separates the name, so an argument may hold more. docs/rewards.md gives every formula.
/// </summary>
public static class RewardSpecs
{
    private const string FirstWord = "first-word";
    private const string Incorrect = "incorrect=";

    /// <summary>The names of the built-in rewards, with what their argument is.</summary>
    public static IReadOnlyList<(string Name, string Argument)> BuiltIn { get; } =
    [
        ("accuracy", "COLUMN[,first-word][,incorrect=SCORE]: the dataset column holding the answer"),
        ("format", "a regular expression the whole completion must match"),
        ("length", "[CACHE]: the soft overlong buffer in tokens (default a fifth of the longest completion)"),
        ("words", "PRICE[,CAP]: what each word after the first costs, and the most all of them can"),
        ("model", "DIR: a reward-model checkpoint (scalar head) sharing the policy's tokenizer"),
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
        if (!BuiltIn.Any(b => b.Name == name))
        {
            throw new InputException("--reward", null, null,
                $"'{spec}': unknown reward '{name}' (built in: {string.Join(", ", BuiltIn.Select(b => b.Name))})");
        }

        try
        {
            return name switch
            {
                "accuracy" => Accuracy(Required(argument, name)),
                "format" => new FormatReward(Required(argument, name)),
                "length" => new OverlongReward(context.MaxCompletionLength,
                    argument.Length == 0 ? OverlongReward.DefaultCache(context.MaxCompletionLength) : Integer(argument, "the overlong buffer")),
                "words" => Words(Required(argument, name)),
                _ => ModelReward.Load(Required(argument, name), context.Backend, context.VocabularySize),
            };
        }
        catch (ArgumentException e)
        {
            throw new InputException("--reward", null, null, $"'{spec}': {Detail(e)}", e);
        }
        catch (InputException e)
        {
            throw new InputException("--reward", null, null, $"'{spec}': {e.Message}", e);
        }
    }

    /// <summary><c>COLUMN[,first-word][,incorrect=SCORE]</c>: options after the column, in any order.</summary>
    private static AccuracyReward Accuracy(string argument)
    {
        var parts = argument.Split(',');
        var extraction = AnswerExtraction.Final;
        float incorrect = 0f;
        foreach (string option in parts.Skip(1))
        {
            if (option == FirstWord)
            {
                extraction = AnswerExtraction.FirstWord;
            }
            else if (option.StartsWith(Incorrect, StringComparison.Ordinal))
            {
                incorrect = (float)Number(option[Incorrect.Length..], "the score of a wrong answer");
            }
            else
            {
                throw new ArgumentException($"unknown accuracy option '{option}' (options: {FirstWord}, {Incorrect}SCORE)");
            }
        }

        return new AccuracyReward(parts[0], extraction, incorrect);
    }

    /// <summary><c>PRICE[,CAP]</c>.</summary>
    private static WordsReward Words(string argument)
    {
        var parts = argument.Split(',');
        if (parts.Length > 2)
        {
            throw new ArgumentException($"'words' takes PRICE[,CAP], got {parts.Length} values");
        }

        return new WordsReward(Number(parts[0], "the price of a word"), parts.Length > 1 ? Number(parts[1], "the cap") : double.PositiveInfinity);
    }

    private static string Required(string argument, string name) =>
        argument.Length > 0 ? argument : throw new ArgumentException($"'{name}' needs an argument: {BuiltIn.First(b => b.Name == name).Argument}");

    private static double Number(string text, string what) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value
            : throw new ArgumentException($"{what} must be a number, got '{text}'");

    private static int Integer(string text, string what) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new ArgumentException($"{what} must be a whole number of tokens, got '{text}'");

    /// <summary>The message without the " (Parameter 'x')" .NET appends: users never see C# parameter names.</summary>
    private static string Detail(ArgumentException e) =>
        e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
}
