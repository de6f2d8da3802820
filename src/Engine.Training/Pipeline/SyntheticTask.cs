using System.Text;
using Engine.Core.Numerics;
using Engine.Training.Data;

namespace Engine.Training.Pipeline;

/// <summary>Sizes and noise levels of the synthetic task; the defaults train a tiny model in minutes on two cores.</summary>
public sealed record SyntheticTaskOptions
{
    /// <summary>Countries, each with a capital.</summary>
    public int Countries { get; init; } = 24;

    /// <summary>Animals, each with a sound and a colour (two facts each).</summary>
    public int Animals { get; init; } = 12;

    /// <summary>Addition facts "a plus b is c" with 1 ≤ a, b ≤ 9.</summary>
    public int Sums { get; init; } = 16;

    /// <summary>Share of each kind's facts held out of SFT, RM and DPO data (still in the pretraining corpus).</summary>
    public double HeldOutFraction { get; init; } = 0.2;

    /// <summary>Pretraining documents (each a run-on list of 3–8 facts); 2,000 is about 300 KB.</summary>
    public int CorpusDocuments { get; init; } = 2000;

    /// <summary>
    /// Share of corpus documents that are fact checks ("Fact check: The capital of Aldora is Tallo (false), the capital
    /// of Brisk is Veyn, …"): run-on lists of statements, half of them wrong, every wrong one flagged right after its
    /// answer. Like the claims and corrections of real web text, they teach the pretrained model to recognise a wrong
    /// answer at the answer itself, knowledge a reward model fine-tuned from it can use on facts it never saw a
    /// preference about.
    /// </summary>
    public double FactCheckRate { get; init; } = 0.5;

    /// <summary>SFT demonstrations per training fact.</summary>
    public int SftPerFact { get; init; } = 3;

    /// <summary>Share of demonstrations where the labeller keeps listing facts after the answer.</summary>
    public double SftVerboseRate { get; init; } = 0.12;

    /// <summary>Share of demonstrations where the labeller gives a wrong answer.</summary>
    public double SftWrongRate { get; init; } = 0.08;

    /// <summary>Preference pairs per training fact, each between two responses of a fresh set of candidates.</summary>
    public int PairsPerFact { get; init; } = 12;

    /// <summary>
    /// Pairs per training fact that contrast the concise right answer with a concise wrong one (each a different wrong
    /// answer, as many as the fact's kind has up to this number), labelled like the other pairs: the comparisons that
    /// teach a reward model what a wrong answer is rather than only how long a good one is.
    /// </summary>
    public int ContrastPairsPerFact { get; init; } = 16;

    /// <summary>K-wise rankings per training fact.</summary>
    public int RankingsPerFact { get; init; } = 8;

    /// <summary>Responses per ranking (K, at most the 5 kinds of candidate).</summary>
    public int RankingSize { get; init; } = 5;

    /// <summary>Held-out preference pairs per held-out fact, labelled by the gold reward without noise.</summary>
    public int EvalPairsPerFact { get; init; } = 20;

    /// <summary>
    /// Scale τ of the Gumbel noise added to the gold reward before labelling, so a labeller prefers a over b with
    /// probability σ((r_a − r_b)/τ) (Bradley–Terry) and ranks K responses by Plackett–Luce.
    /// </summary>
    public double LabelNoise { get; init; } = 0.25;
}

/// <summary>The data sets of the synthetic task, one JSONL file each.</summary>
public enum SyntheticSplit
{
    /// <summary><c>pretrain.jsonl</c>: <c>text</c> documents, every fact in run-on lists.</summary>
    Pretrain,
    /// <summary><c>sft.jsonl</c>: <c>prompt</c>/<c>completion</c> demonstrations by an imperfect labeller.</summary>
    Sft,
    /// <summary><c>preference.jsonl</c>: <c>prompt</c>/<c>chosen</c>/<c>rejected</c> with label noise.</summary>
    Preference,
    /// <summary><c>ranking.jsonl</c>: <c>prompt</c>/<c>responses</c>/<c>ranking</c> with label noise.</summary>
    Ranking,
    /// <summary><c>eval_prompts.jsonl</c>: <c>prompt</c> only, the held-out facts.</summary>
    EvalPrompts,
    /// <summary><c>eval_preference.jsonl</c>: pairs on held-out facts, labelled by the gold reward without noise.</summary>
    EvalPreference,
    /// <summary><c>rl_prompts.jsonl</c>: <c>prompt</c>/<c>answer</c> of the training facts, for RL with verifiable rewards.</summary>
    RlPrompts,
}

/// <summary>
/// A synthetic instruction-following task with a known gold reward, generated from a seed with no downloads: a world
/// of made-up facts, a web-like pretraining corpus in which facts run on inside lists (so a pretrained model asked
/// "The capital of Aldora is" answers and keeps listing, like GPT-3 continuing "中国的首都是北京，美国的首都是华盛顿…"), SFT
/// demonstrations from a mostly-concise labeller, preference pairs and rankings labelled by the gold reward plus
/// noise, and held-out facts that appear only in the pretraining corpus. The same seed and options give the same
/// bytes on every machine.
/// </summary>
public sealed class SyntheticTask
{
    // Words of the templates: no generated name may equal one, or the gold reward's first-word check could be fooled.
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "the", "of", "is", "capital", "says", "colour", "plus", "and", "a", "an", "list", "here", "facts",
    };

    private static readonly string[] Onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st", "pl", "sk"];
    private static readonly string[] Vowels = ["a", "e", "i", "o", "u", "ai", "ou"];
    private static readonly string[] Codas = ["", "", "n", "r", "l", "s", "th", "k"];
    private static readonly string[] Colours = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "brown"];
    private static readonly Dictionary<FactKind, string> Headers = new()
    {
        [FactKind.Capital] = "Capitals of the world",
        [FactKind.Sound] = "What the animals say",
        [FactKind.Colour] = "Animal colours",
        [FactKind.Sum] = "Addition table",
    };

    /// <summary>What a fact check writes after a wrong answer.</summary>
    public const string WrongFlag = "(false)";

    private readonly ulong seed;

    private SyntheticTask(ulong seed, SyntheticTaskOptions options)
    {
        this.seed = seed;
        Options = options;
    }

    /// <summary>The options it was generated with.</summary>
    public SyntheticTaskOptions Options { get; }

    /// <summary>Every fact of the world.</summary>
    public IReadOnlyList<SyntheticFact> Facts { get; private set; } = [];

    /// <summary>Facts used for SFT, RM and DPO data.</summary>
    public IReadOnlyList<SyntheticFact> TrainFacts { get; private set; } = [];

    /// <summary>Facts kept for evaluation: in the pretraining corpus, never in SFT, RM or DPO data.</summary>
    public IReadOnlyList<SyntheticFact> HeldOutFacts { get; private set; } = [];

    /// <summary>Pretraining documents.</summary>
    public IReadOnlyList<TextExample> Pretrain { get; private set; } = [];

    /// <summary>SFT demonstrations.</summary>
    public IReadOnlyList<PromptCompletionExample> Sft { get; private set; } = [];

    /// <summary>Noisy preference pairs on training facts.</summary>
    public IReadOnlyList<PreferenceExample> Preferences { get; private set; } = [];

    /// <summary>Noisy K-wise rankings on training facts.</summary>
    public IReadOnlyList<RankingExample> Rankings { get; private set; } = [];

    /// <summary>Prompts of the held-out facts.</summary>
    public IReadOnlyList<PromptExample> EvalPrompts { get; private set; } = [];

    /// <summary>Noise-free preference pairs on held-out facts, for the reward model's pairwise accuracy.</summary>
    public IReadOnlyList<PreferenceExample> EvalPreferences { get; private set; } = [];

    /// <summary>Prompts of the training facts, each with its answer (<see cref="VerifiableRewards.AnswerColumn"/>) for verifiable rewards.</summary>
    public IReadOnlyList<PromptExample> RlPrompts { get; private set; } = [];

    /// <summary>The gold reward of this world.</summary>
    public GoldReward Gold { get; private set; } = null!;

    /// <summary>Generates the task; deterministic in <paramref name="seed"/> and <paramref name="options"/>.</summary>
    public static SyntheticTask Generate(ulong seed, SyntheticTaskOptions? options = null)
    {
        options ??= new SyntheticTaskOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Countries, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Animals, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Sums);
        ArgumentOutOfRangeException.ThrowIfNegative(options.ContrastPairsPerFact);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Sums, 72);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.RankingSize, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.RankingSize, 5);
        if (options.FactCheckRate is < 0 or > 1 || double.IsNaN(options.FactCheckRate))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "FactCheckRate must be in [0, 1]");
        }

        if (options.HeldOutFraction is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "HeldOutFraction must be in [0, 1)");
        }

        var task = new SyntheticTask(seed, options);
        task.Build();
        return task;
    }

    /// <summary>The file name of a split.</summary>
    public static string FileName(SyntheticSplit split) => split switch
    {
        SyntheticSplit.Pretrain => "pretrain.jsonl",
        SyntheticSplit.Sft => "sft.jsonl",
        SyntheticSplit.Preference => "preference.jsonl",
        SyntheticSplit.Ranking => "ranking.jsonl",
        SyntheticSplit.EvalPrompts => "eval_prompts.jsonl",
        SyntheticSplit.EvalPreference => "eval_preference.jsonl",
        SyntheticSplit.RlPrompts => "rl_prompts.jsonl",
        _ => throw new ArgumentOutOfRangeException(nameof(split)),
    };

    /// <summary>The examples of a split.</summary>
    public IReadOnlyList<Example> Split(SyntheticSplit split) => split switch
    {
        SyntheticSplit.Pretrain => Pretrain,
        SyntheticSplit.Sft => Sft,
        SyntheticSplit.Preference => Preferences,
        SyntheticSplit.Ranking => Rankings,
        SyntheticSplit.EvalPrompts => EvalPrompts,
        SyntheticSplit.EvalPreference => EvalPreferences,
        SyntheticSplit.RlPrompts => RlPrompts,
        _ => throw new ArgumentOutOfRangeException(nameof(split)),
    };

    /// <summary>Writes one split as JSONL in the TRL field conventions.</summary>
    public void WriteSplit(SyntheticSplit split, Stream stream) => ExampleJsonlWriter.Write(stream, Split(split));

    /// <summary>Writes every split into <paramref name="directory"/> (created if missing); returns the paths by split.</summary>
    public IReadOnlyDictionary<SyntheticSplit, string> WriteAll(string directory)
    {
        Directory.CreateDirectory(directory);
        var paths = new Dictionary<SyntheticSplit, string>();
        foreach (var split in Enum.GetValues<SyntheticSplit>())
        {
            string path = Path.Combine(directory, FileName(split));
            using (var file = File.Create(path))
            {
                WriteSplit(split, file);
            }

            paths[split] = path;
        }

        return paths;
    }

    /// <summary>One line on the task's size, for logs and the report's notes.</summary>
    public string Describe()
    {
        long corpusBytes = Pretrain.Sum(d => (long)Encoding.UTF8.GetByteCount(d.Text) + 1);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"synthetic facts task, seed {seed}: {Facts.Count} facts ({HeldOutFacts.Count} held out), corpus {Pretrain.Count} documents ({corpusBytes / 1024.0:0} KB), "
            + $"{Sft.Count} SFT demonstrations, {Preferences.Count} preference pairs, {Rankings.Count} rankings of {Options.RankingSize}, "
            + $"{EvalPrompts.Count} held-out prompts, {EvalPreferences.Count} held-out pairs");
    }

    /// <summary>The fact whose prompt is <paramref name="prompt"/> (surrounding white space ignored), or null.</summary>
    public SyntheticFact? FactFor(string prompt) => Gold.FactFor(prompt);

    private void Build()
    {
        // One stream per part, so that changing, say, the SFT size leaves the world and the corpus unchanged.
        var world = new RandomStream(seed);
        Facts = BuildFacts(world);
        Gold = new GoldReward(Facts);

        var held = new List<SyntheticFact>();
        var train = new List<SyntheticFact>();
        foreach (var kind in Enum.GetValues<FactKind>())
        {
            var ofKind = Facts.Where(f => f.Kind == kind).ToList();
            Shuffle(ofKind, world);
            int nHeld = ofKind.Count == 0 ? 0 : Math.Max(Options.HeldOutFraction > 0 ? 1 : 0, (int)Math.Round(Options.HeldOutFraction * ofKind.Count));
            held.AddRange(ofKind.Take(nHeld));
            train.AddRange(ofKind.Skip(nHeld));
        }

        HeldOutFacts = [.. held.OrderBy(f => f.Id)];
        TrainFacts = [.. train.OrderBy(f => f.Id)];

        Pretrain = BuildCorpus(new RandomStream(seed ^ 0x5052455452414931UL));
        Sft = BuildSft(new RandomStream(seed ^ 0x5346545346545346UL));
        var labels = new RandomStream(seed ^ 0x5052454652454E43UL);
        // Shuffled so that a prefix of a file (or an unshuffled reader) sees many facts, not one fact many times.
        var preferences = TrainFacts.SelectMany(f => Pairs(f, Options.PairsPerFact, labels, Options.LabelNoise)).ToList();
        var contrast = new RandomStream(seed ^ 0x434F4E5452415354UL);
        preferences.AddRange(TrainFacts.SelectMany(f => ContrastPairs(f, contrast)));
        Shuffle(preferences, labels);
        Preferences = preferences;
        var rankings = TrainFacts.SelectMany(f => Enumerable.Range(0, Options.RankingsPerFact).Select(_ => Ranking(f, labels))).ToList();
        Shuffle(rankings, labels);
        Rankings = rankings;
        EvalPrompts = [.. HeldOutFacts.Select(f => new PromptExample(TextOrChat.FromText(f.Prompt)))];
        RlPrompts = [.. TrainFacts.Select(VerifiableRewards.AnsweredPrompt)];
        var evalRandom = new RandomStream(seed ^ 0x4556414C4556414CUL);
        EvalPreferences = [.. HeldOutFacts.SelectMany(f => Pairs(f, Options.EvalPairsPerFact, evalRandom, noise: 0))];
    }

    private List<SyntheticFact> BuildFacts(RandomStream random)
    {
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string Name(int minSyllables, int maxSyllables)
        {
            while (true)
            {
                int n = minSyllables + random.NextInt(maxSyllables - minSyllables + 1);
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    sb.Append(Pick(Onsets, random)).Append(Pick(Vowels, random));
                }

                sb.Append(Pick(Codas, random));
                string word = sb.ToString();
                if (word.Length >= 3 && !Reserved.Contains(word) && used.Add(word))
                {
                    return word;
                }
            }
        }

        var facts = new List<SyntheticFact>();
        for (int i = 0; i < Options.Countries; i++)
        {
            string country = SyntheticFact.Capitalize(Name(2, 3));
            string city = SyntheticFact.Capitalize(Name(1, 2));
            facts.Add(new SyntheticFact(facts.Count, FactKind.Capital, country, $"the capital of {country} is", city));
        }

        // Few sounds shared by many animals, like real ones: the answer is learnt per animal, not guessed from its name.
        var sounds = Enumerable.Range(0, Math.Max(3, Options.Animals / 2)).Select(_ => Name(1, 1)).ToArray();
        var animals = Enumerable.Range(0, Options.Animals).Select(_ => Name(1, 2)).ToArray();
        foreach (string animal in animals)
        {
            facts.Add(new SyntheticFact(facts.Count, FactKind.Sound, animal, $"the {animal} says", Pick(sounds, random)));
        }

        foreach (string animal in animals)
        {
            facts.Add(new SyntheticFact(facts.Count, FactKind.Colour, animal, $"the colour of the {animal} is", Pick(Colours, random)));
        }

        var sums = new List<(int A, int B)>();
        for (int a = 1; a <= 9; a++)
        {
            for (int b = 1; b <= 9; b++)
            {
                if (a != b)
                {
                    sums.Add((a, b));
                }
            }
        }

        Shuffle(sums, random);
        foreach (var (a, b) in sums.Take(Options.Sums))
        {
            facts.Add(new SyntheticFact(facts.Count, FactKind.Sum, $"{a} plus {b}", $"{a} plus {b} is", (a + b).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return facts;
    }

    private List<TextExample> BuildCorpus(RandomStream random)
    {
        var byKind = Enum.GetValues<FactKind>().ToDictionary(k => k, k => Facts.Where(f => f.Kind == k).ToList());
        var docs = new List<TextExample>();
        for (int d = 0; d < Options.CorpusDocuments; d++)
        {
            // The first pass puts every fact at the head of a document, so each prompt appears capitalised at least once.
            SyntheticFact first = d < Facts.Count ? Facts[d] : Facts[random.NextInt(Facts.Count)];
            var pool = byKind[first.Kind].Where(f => f != first).ToList();
            Shuffle(pool, random);
            int n = Math.Min(pool.Count, 2 + random.NextInt(6));
            var items = new List<SyntheticFact> { first };
            items.AddRange(pool.Take(n));

            var sb = new StringBuilder();
            if (d >= Facts.Count && random.NextDouble() < Options.FactCheckRate)
            {
                docs.Add(new TextExample(FactCheck(items, random)));
                continue;
            }

            if (random.NextDouble() < 0.2)
            {
                sb.Append(Headers[first.Kind]).Append(": ");
            }

            for (int i = 0; i < items.Count; i++)
            {
                if (i > 0)
                {
                    sb.Append(i == items.Count - 1 && random.NextDouble() < 0.3 ? " and " : ", ");
                }

                sb.Append(items[i].Statement(capitalize: i == 0));
            }

            sb.Append('.');
            docs.Add(new TextExample(sb.ToString()));
        }

        // The coverage pass above put documents in fact order; a web crawl has no such order.
        Shuffle(docs, random);
        return docs;
    }

    /// <summary>
    /// A run-on list like the others, each fact stated right or (half the time) wrong, every wrong answer flagged right
    /// after it: "Fact check: 3 plus 4 is 8 (false), 2 plus 5 is 7." The flag follows the answer word, not the
    /// punctuation, so the pretrained model learns to judge an answer at the answer itself, whatever comes after it —
    /// which is what a reward model needs of a response that gives a wrong answer and then runs on with true facts.
    /// </summary>
    private string FactCheck(List<SyntheticFact> items, RandomStream random)
    {
        var sb = new StringBuilder("Fact check: ");
        for (int i = 0; i < items.Count; i++)
        {
            var fact = items[i];
            bool right = random.NextDouble() < 0.5;
            sb.Append(i == 0 ? fact.Prompt : ", " + fact.Clause).Append(' ').Append(right ? fact.Answer : WrongAnswer(fact, random));
            if (!right)
            {
                sb.Append(' ').Append(WrongFlag);
            }
        }

        return sb.Append('.').ToString();
    }

    private List<PromptCompletionExample> BuildSft(RandomStream random)
    {
        var demos = new List<PromptCompletionExample>();
        for (int r = 0; r < Options.SftPerFact; r++)
        {
            // Rounds over all facts rather than fact-by-fact, so that a prefix of the file covers the world.
            foreach (var fact in TrainFacts)
            {
                double u = random.NextDouble();
                string completion = u < Options.SftWrongRate ? Concise(WrongAnswer(fact, random))
                    : u < Options.SftWrongRate + Options.SftVerboseRate ? Verbose(fact, fact.Answer, 1 + random.NextInt(3), random)
                    : Concise(fact.Answer);
                demos.Add(new PromptCompletionExample(TextOrChat.FromText(fact.Prompt), TextOrChat.FromText(completion)));
            }
        }

        return demos;
    }

    /// <summary>The kinds of response a labeller compares: concise or rambling, right or wrong.</summary>
    private List<string> Candidates(SyntheticFact fact, RandomStream random)
    {
        string wrong = WrongAnswer(fact, random);
        return
        [
            Concise(fact.Answer),
            Verbose(fact, fact.Answer, 1, random),
            Verbose(fact, fact.Answer, 3, random),
            Concise(wrong),
            Verbose(fact, wrong, 2, random),
        ];
    }

    /// <summary>
    /// <paramref name="count"/> pairs, each of two kinds of response from a fresh set of candidates (another wrong answer,
    /// other facts run on), so that a reward model meets many responses per prompt rather than the same few again.
    /// </summary>
    private IEnumerable<PreferenceExample> Pairs(SyntheticFact fact, int count, RandomStream random, double noise)
    {
        for (int made = 0; made < count;)
        {
            var candidates = Candidates(fact, random);
            int a = random.NextInt(candidates.Count), b = random.NextInt(candidates.Count);
            double ra = Gold.Score(fact, candidates[a]).Reward, rb = Gold.Score(fact, candidates[b]).Reward;
            // Ties teach nothing and make a noise-free label arbitrary; the concise right and wrong answers never tie.
            if (a == b || ra == rb)
            {
                continue;
            }

            made++;
            yield return Labelled(fact, candidates[a], ra, candidates[b], rb, noise, random);
        }
    }

    private IEnumerable<PreferenceExample> ContrastPairs(SyntheticFact fact, RandomStream random)
    {
        var wrong = Facts.Where(f => f.Kind == fact.Kind).Select(f => f.Answer).Distinct().Where(a => a != fact.Answer).ToList();
        Shuffle(wrong, random);
        string right = Concise(fact.Answer);
        double gold = Gold.Score(fact, right).Reward;
        foreach (string answer in wrong.Take(Options.ContrastPairsPerFact))
        {
            string other = Concise(answer);
            yield return Labelled(fact, right, gold, other, Gold.Score(fact, other).Reward, Options.LabelNoise, random);
        }
    }

    /// <summary>The pair (a, b) as the labeller orders it: a is chosen when r_a + τ·G₁ &gt; r_b + τ·G₂ (Gumbel G, drawn in that order).</summary>
    private static PreferenceExample Labelled(SyntheticFact fact, string a, double ra, string b, double rb, double noise, RandomStream random)
    {
        bool aWins = ra + (noise * Gumbel(random)) > rb + (noise * Gumbel(random));
        var (chosen, rejected) = aWins ? (a, b) : (b, a);
        return new PreferenceExample(TextOrChat.FromText(fact.Prompt), TextOrChat.FromText(chosen), TextOrChat.FromText(rejected), null, false);
    }

    private RankingExample Ranking(SyntheticFact fact, RandomStream random)
    {
        var candidates = Candidates(fact, random);
        Shuffle(candidates, random);
        var responses = candidates.Take(Options.RankingSize).ToList();
        var noisy = responses.Select(r => Gold.Score(fact, r).Reward + Options.LabelNoise * Gumbel(random)).ToArray();
        var ranking = Enumerable.Range(0, responses.Count).OrderByDescending(i => noisy[i]).ToList();
        return new RankingExample(TextOrChat.FromText(fact.Prompt), [.. responses.Select(TextOrChat.FromText)], ranking);
    }

    private static string Concise(string answer) => " " + answer + ".";

    /// <summary>The answer, then <paramref name="more"/> further facts of the same kind, as the corpus runs on.</summary>
    private string Verbose(SyntheticFact fact, string answer, int more, RandomStream random)
    {
        var others = Facts.Where(f => f.Kind == fact.Kind && f != fact).ToList();
        Shuffle(others, random);
        var sb = new StringBuilder(" ").Append(answer);
        foreach (var other in others.Take(more))
        {
            sb.Append(", ").Append(other.Statement(capitalize: false));
        }

        return sb.Append('.').ToString();
    }

    private string WrongAnswer(SyntheticFact fact, RandomStream random)
    {
        var wrong = Facts.Where(f => f.Kind == fact.Kind).Select(f => f.Answer).Distinct().Where(a => a != fact.Answer).ToList();
        return wrong.Count > 0 ? Pick(wrong, random) : fact.Answer + "s";
    }

    // u strictly inside (0, 1): at either end −ln(−ln u) is infinite.
    private static double Gumbel(RandomStream random) => -Math.Log(-Math.Log(((random.NextUInt64() >> 11) + 0.5) * (1.0 / (1UL << 53))));

    private static T Pick<T>(IReadOnlyList<T> items, RandomStream random) => items[random.NextInt(items.Count)];

    private static void Shuffle<T>(List<T> items, RandomStream random)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = random.NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
