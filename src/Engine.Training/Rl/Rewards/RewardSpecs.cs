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
/// The built-in rewards by their command-line spec, <c>[NAME=]KIND[:ARGUMENT]</c> (<c>--reward format:REGEX</c>,
/// <c>--reward think=format:^&lt;think&gt;</c>). Only the first colon ends the kind, so an argument may hold more, and
/// only an <c>=</c> before it ends a name, so an argument may hold <c>=</c> too. A reward without a NAME is named after
/// its kind, numbered by order among the unnamed ones of that kind: <c>format</c>, <c>format_2</c>, <c>format_3</c>, ….
/// docs/rewards.md gives every formula.
/// </summary>
public static class RewardSpecs
{
    private const string FirstWord = "first-word";
    private const string Incorrect = "incorrect=";

    /// <summary>The kinds of built-in reward, with what their argument is.</summary>
    public static IReadOnlyList<(string Kind, string Argument)> BuiltIn { get; } =
    [
        ("accuracy", "COLUMN[,first-word][,incorrect=SCORE]: the dataset column holding the answer"),
        ("format", "a regular expression the whole completion must match"),
        ("length", "[CACHE]: the soft overlong buffer in tokens (default a fifth of the longest completion)"),
        ("words", "PRICE[,CAP]: what each word after the first costs, and the most all of them can"),
        ("model", "DIR: a reward-model checkpoint (scalar head) sharing the policy's tokenizer"),
    ];

    /// <summary>The reward <paramref name="spec"/> names, built with <paramref name="context"/>; named NAME when the spec gives one, else after its kind.</summary>
    /// <exception cref="InputException">An unknown kind, a malformed name, or an argument the reward cannot use (names <c>--reward</c>).</exception>
    public static IRewardFunction Parse(string spec, RewardSpecContext context)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var parts = Split(spec);
        return Build(parts, parts.Name ?? parts.Kind, context);
    }

    /// <summary>
    /// The rewards <paramref name="specs"/> name, in order, each named as <see cref="Names"/> says; the names are
    /// checked before any reward is built (so no reward model is loaded for a list that is refused).
    /// </summary>
    /// <exception cref="InputException">As <see cref="Parse"/>, or two specs that get the same name.</exception>
    public static IReadOnlyList<IRewardFunction> ParseAll(IReadOnlyList<string> specs, RewardSpecContext context)
    {
        var names = Names(specs);
        return [.. specs.Select((spec, i) => Build(Split(spec), names[i], context))];
    }

    /// <summary>
    /// The name each of <paramref name="specs"/> gets: its NAME when it gives one, else its kind for the first unnamed
    /// reward of that kind and <c>KIND_n</c> for the n-th (<c>format</c>, <c>format_2</c>, …).
    /// </summary>
    /// <exception cref="InputException">An unknown kind, a malformed name, or two specs with the same name (names <c>--reward</c> and both specs).</exception>
    public static IReadOnlyList<string> Names(IReadOnlyList<string> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        var names = new string[specs.Count];
        var unnamedOfKind = new Dictionary<string, int>(StringComparer.Ordinal);
        var firstWithName = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < specs.Count; i++)
        {
            var parts = Split(specs[i] ?? throw new ArgumentException("a reward spec is null", nameof(specs)));
            if (parts.Name is null)
            {
                int n = unnamedOfKind[parts.Kind] = unnamedOfKind.GetValueOrDefault(parts.Kind) + 1;
                names[i] = n == 1 ? parts.Kind : string.Create(CultureInfo.InvariantCulture, $"{parts.Kind}_{n}");
            }
            else
            {
                names[i] = parts.Name;
            }

            if (!firstWithName.TryAdd(names[i], specs[i]))
            {
                throw new InputException("--reward", null, null,
                    $"'{firstWithName[names[i]]}' and '{specs[i]}' are both named '{names[i]}'; give one another name with NAME=KIND:ARGUMENT");
            }
        }

        return names;
    }

    /// <summary>A spec's parts: the NAME before an <c>=</c> (null when none), the kind, and the argument after the first colon.</summary>
    private static SpecParts Split(string spec)
    {
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        string head = colon < 0 ? spec : spec[..colon];
        string argument = colon < 0 ? "" : spec[(colon + 1)..];

        // No kind holds '=', so one before the first colon can only end a name.
        int equals = head.IndexOf('=', StringComparison.Ordinal);
        string? name = equals < 0 ? null : head[..equals];
        if (name is not null && !IsName(name))
        {
            throw new InputException("--reward", null, null,
                $"'{spec}': '{name}' is not a reward name; a name is letters, digits, '_' and '-' (NAME=KIND:ARGUMENT)");
        }

        string kind = equals < 0 ? head : head[(equals + 1)..];
        if (!BuiltIn.Any(b => b.Kind == kind))
        {
            throw new InputException("--reward", null, null,
                $"'{spec}': unknown reward '{kind}' (built in: {string.Join(", ", BuiltIn.Select(b => b.Kind))})");
        }

        return new SpecParts(spec, name, kind, argument);
    }

    private static bool IsName(string name) => name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    private static IRewardFunction Build(SpecParts parts, string name, RewardSpecContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (spec, _, kind, argument) = parts;
        try
        {
            return kind switch
            {
                "accuracy" => Accuracy(Required(argument, kind), name),
                "format" => new FormatReward(Required(argument, kind)) { Name = name },
                "length" => new OverlongReward(context.MaxCompletionLength,
                    argument.Length == 0 ? OverlongReward.DefaultCache(context.MaxCompletionLength) : Integer(argument, "the overlong buffer")) { Name = name },
                "words" => Words(Required(argument, kind), name),
                _ => ModelReward.Load(Required(argument, kind), context.Backend, context.VocabularySize, name),
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
    private static AccuracyReward Accuracy(string argument, string name)
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

        return new AccuracyReward(parts[0], extraction, incorrect) { Name = name };
    }

    /// <summary><c>PRICE[,CAP]</c>.</summary>
    private static WordsReward Words(string argument, string name)
    {
        var parts = argument.Split(',');
        if (parts.Length > 2)
        {
            throw new ArgumentException($"'words' takes PRICE[,CAP], got {parts.Length} values");
        }

        return new WordsReward(Number(parts[0], "the price of a word"), parts.Length > 1 ? Number(parts[1], "the cap") : double.PositiveInfinity) { Name = name };
    }

    private static string Required(string argument, string kind) =>
        argument.Length > 0 ? argument : throw new ArgumentException($"'{kind}' needs an argument: {BuiltIn.First(b => b.Kind == kind).Argument}");

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

    private readonly record struct SpecParts(string Spec, string? Name, string Kind, string Argument);
}
