using Engine.Training.Data;

namespace Engine.Training.Objectives;

/// <summary>
/// The responses to one prompt and the preferences among them: a ranking, best first. A preference pair is the K = 2
/// case (chosen, rejected); an InstructGPT ranking of K responses implies all C(K,2) (better, worse) pairs.
/// </summary>
/// <param name="Responses">The K ≥ 2 tokenized prompt + response sequences (the response is the trained part).</param>
/// <param name="Ranking">Indices into <paramref name="Responses"/>, best first: a permutation of 0..K−1.</param>
/// <param name="Margin">How much better each better response is (the data's <c>margin</c>); null for none.</param>
/// <param name="Source">Where the example came from (file:line), for error messages.</param>
public sealed record PreferenceGroup(IReadOnlyList<TokenizedSequence> Responses, IReadOnlyList<int> Ranking, double? Margin = null, string Source = "")
{
    /// <summary>Number of (better, worse) pairs, K(K−1)/2.</summary>
    public int PairCount => Ranking.Count * (Ranking.Count - 1) / 2;

    /// <summary>
    /// Tokenizes a <see cref="PreferenceExample"/> (a pair with an optional margin) or a <see cref="RankingExample"/>
    /// through <paramref name="collator"/>. Every response must keep at least one token predicted from the ones before
    /// it after truncation, otherwise there is nothing to score.
    /// </summary>
    /// <exception cref="DatasetException">A response has no response token left (empty, or truncated away).</exception>
    /// <exception cref="ArgumentException">The example is not a preference or ranking example.</exception>
    public static PreferenceGroup From(SequenceCollator collator, Example example)
    {
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(example);
        string source = $"{example.Source}:{example.Line}";
        switch (example)
        {
            case PreferenceExample p:
            {
                var (chosen, rejected) = collator.TokenizePair(p);
                RequireResponse(collator, chosen, example, "chosen");
                RequireResponse(collator, rejected, example, "rejected");
                return new PreferenceGroup([chosen, rejected], [0, 1], p.Margin, source);
            }

            case RankingExample r:
            {
                var responses = new List<TokenizedSequence>(r.Responses.Count);
                foreach (var response in r.Responses)
                {
                    var sequence = collator.Tokenize(r.Prompt, response, r.Tools);
                    RequireResponse(collator, sequence, example, "responses");
                    responses.Add(sequence);
                }

                return new PreferenceGroup(responses, r.Ranking, null, source);
            }

            default:
                throw new DatasetException(
                    $"{source}: a {ExampleFormats.Fields(example)} line has no preferences; reward models and DPO need prompt/chosen/rejected or prompt/responses/ranking");
        }
    }

    // The response token a reward is read at, and the first token DPO scores, both need a target: a trained token
    // after position 0 (TokenizedSequence marks the response; the collator turns it into next-token targets).
    private static void RequireResponse(SequenceCollator collator, TokenizedSequence s, Example example, string field)
    {
        for (int i = 1; i < s.Length; i++)
        {
            if (s.Trained[i])
            {
                return;
            }
        }

        string why = s.Length >= collator.Options.MaxLength
            ? $"the prompt fills all {s.Length} tokens and the response was truncated away; raise MaxLength or set MaxPromptLength"
            : "the response is empty";
        throw new DatasetException(example.Source, example.Line, field, $"no response token to score: {why}");
    }
}

/// <summary>
/// A collated micro-batch for pairwise objectives (reward model, DPO): every response of every group is one row of
/// <see cref="Sequences"/>, forwarded once however many pairs it is in, and the pairs index those rows. Pairs of a
/// group of K responses are weighted 1/C(K,2), so each prompt counts once (InstructGPT); a plain pair has weight 1.
/// </summary>
public sealed class PreferenceBatch
{
    /// <summary>
    /// Builds a batch from collated rows and pairs over them. Each row needs at least one target (a response token):
    /// the last response token of row r is the one after its last target, <see cref="LastResponse"/>.
    /// </summary>
    /// <param name="sequences">R rows: tokens, next-token targets of the response tokens (others ignored) and the loss mask.</param>
    /// <param name="chosen">Row index of the better response of each pair [P].</param>
    /// <param name="rejected">Row index of the worse response of each pair [P].</param>
    /// <param name="weights">Pair weights [P] (finite, ≥ 0), or null for all 1.</param>
    /// <param name="margins">Pair margins μ [P] (the loss uses s_c − s_l − μ), or null for none.</param>
    /// <param name="groups">Number of prompts the pairs come from (for logging and averaging); P when null.</param>
    public PreferenceBatch(SequenceBatch sequences, int[] chosen, int[] rejected, float[]? weights = null, float[]? margins = null, int? groups = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentNullException.ThrowIfNull(chosen);
        ArgumentNullException.ThrowIfNull(rejected);
        int rows = sequences.Batch, time = sequences.Time, pairs = chosen.Length;
        if (sequences.Tokens.Length != rows * time || sequences.Targets.Length != rows * time || sequences.LossMask.Length != rows * time)
        {
            throw new ArgumentException($"tokens, targets and loss mask must each hold B·T = {rows * time} values", nameof(sequences));
        }

        if (rejected.Length != pairs || (weights is not null && weights.Length != pairs) || (margins is not null && margins.Length != pairs))
        {
            throw new ArgumentException($"chosen has {pairs} pairs; rejected, weights and margins must have as many");
        }

        if (pairs == 0)
        {
            throw new ArgumentException("a preference batch needs at least one pair", nameof(chosen));
        }

        for (int p = 0; p < pairs; p++)
        {
            if ((uint)chosen[p] >= (uint)rows || (uint)rejected[p] >= (uint)rows || chosen[p] == rejected[p])
            {
                throw new ArgumentOutOfRangeException(nameof(chosen), $"pair {p} = ({chosen[p]}, {rejected[p]}) must be two different rows of [0, {rows})");
            }

            if (weights is not null && !(weights[p] >= 0f && float.IsFinite(weights[p])))
            {
                throw new ArgumentOutOfRangeException(nameof(weights), $"pair {p}: weight {weights[p]} must be finite and ≥ 0");
            }

            if (margins is not null && !float.IsFinite(margins[p]))
            {
                throw new ArgumentOutOfRangeException(nameof(margins), $"pair {p}: margin {margins[p]} must be finite");
            }
        }

        LastResponse = new int[rows];
        ResponseTokens = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            int last = -1, count = 0;
            for (int t = 0; t < time; t++)
            {
                if (sequences.Targets[(r * time) + t] >= 0)
                {
                    last = t;
                    count++;
                }
            }

            if (count == 0)
            {
                throw new ArgumentException($"row {r} has no response token (no position with a target): nothing to score", nameof(sequences));
            }

            LastResponse[r] = last + 1;
            ResponseTokens[r] = count;
            if (sequences.Lengths.Length != rows || sequences.Lengths[r] <= LastResponse[r] || sequences.Lengths[r] > time)
            {
                throw new ArgumentException(
                    $"row {r}: its length must cover its last response token at {LastResponse[r]} and fit T = {time}", nameof(sequences));
            }
        }

        Sequences = sequences;
        Chosen = chosen;
        Rejected = rejected;
        Weights = weights ?? Enumerable.Repeat(1f, pairs).ToArray();
        Margins = margins;
        Groups = groups ?? pairs;
    }

    /// <summary>The R collated rows, one per response: tokens [R,T], targets (response tokens only) and loss mask.</summary>
    public SequenceBatch Sequences { get; }

    /// <summary>R, the number of rows (responses).</summary>
    public int Rows => Sequences.Batch;

    /// <summary>T, the padded row length.</summary>
    public int Time => Sequences.Time;

    /// <summary>P, the number of pairs.</summary>
    public int Pairs => Chosen.Length;

    /// <summary>Number of prompts (groups) the pairs come from.</summary>
    public int Groups { get; }

    /// <summary>Per row, the position of its last response token (where a reward model reads its score) [R].</summary>
    public int[] LastResponse { get; }

    /// <summary>Per row, how many response tokens have a log-prob (targets ≥ 0): IPO's length normaliser [R].</summary>
    public int[] ResponseTokens { get; }

    /// <summary>Better row of each pair [P].</summary>
    public int[] Chosen { get; }

    /// <summary>Worse row of each pair [P].</summary>
    public int[] Rejected { get; }

    /// <summary>Pair weights [P]: 1/C(K,2) for the pairs of a K-wise ranking, 1 for plain pairs.</summary>
    public float[] Weights { get; }

    /// <summary>Pair margins μ [P], or null when the data has none.</summary>
    public float[]? Margins { get; }

    /// <summary>Tokens of all rows without padding (for tokens/s).</summary>
    public long Tokens => Sequences.Lengths.Sum(l => (long)l);

    /// <summary>
    /// Collates groups into one batch: rows are the responses group after group (each forwarded once), pairs are every
    /// (better, worse) pair of each ranking with weight 1/C(K,2), and a group's margin applies to each of its pairs.
    /// Rows are padded to the longest (or to <paramref name="time"/>).
    /// </summary>
    public static PreferenceBatch Collate(IReadOnlyList<PreferenceGroup> groups, SequenceCollator collator, int? time = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(collator);
        if (groups.Count == 0)
        {
            throw new ArgumentException("no preference groups to collate", nameof(groups));
        }

        var rows = new List<TokenizedSequence>();
        var chosen = new List<int>();
        var rejected = new List<int>();
        var weights = new List<float>();
        var margins = new List<float>();
        bool anyMargin = groups.Any(g => g.Margin is not null);
        foreach (var g in groups)
        {
            int k = g.Responses.Count;
            if (k < 2 || g.Ranking.Count != k || g.Ranking.Distinct().Count() != k || g.Ranking.Any(i => (uint)i >= (uint)k))
            {
                throw new ArgumentException($"{g.Source}: a group needs K ≥ 2 responses and a ranking that is a permutation of 0..K−1", nameof(groups));
            }

            int first = rows.Count;
            rows.AddRange(g.Responses);
            float weight = 1f / g.PairCount;
            for (int i = 0; i < k; i++)
            {
                for (int j = i + 1; j < k; j++)
                {
                    chosen.Add(first + g.Ranking[i]);
                    rejected.Add(first + g.Ranking[j]);
                    weights.Add(weight);
                    margins.Add((float)(g.Margin ?? 0.0));
                }
            }
        }

        var sequences = collator.Collate(rows, time);
        return new PreferenceBatch(sequences, [.. chosen], [.. rejected], [.. weights], anyMargin ? [.. margins] : null, groups.Count);
    }

    /// <summary>
    /// Tokenizes preference and ranking examples (<see cref="PreferenceGroup.From"/>) and yields batches of
    /// <paramref name="groupsPerBatch"/> prompts each (the last may have fewer).
    /// </summary>
    public static IEnumerable<PreferenceBatch> Batches(IEnumerable<Example> examples, SequenceCollator collator, int groupsPerBatch)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groupsPerBatch);
        foreach (var chunk in examples.Select(e => PreferenceGroup.From(collator, e)).Chunk(groupsPerBatch))
        {
            yield return Collate(chunk, collator);
        }
    }
}
