using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.Backends;
using Engine.Core.IO;
using Engine.Models.Chat;
using Engine.Models.Formats;

namespace Engine.Models.HuggingFace;

/// <summary>Options of <see cref="HfCheckpoint.Load"/> and <see cref="HfCheckpoint.LoadWeights"/>.</summary>
public sealed record HfLoadOptions
{
    /// <summary>
    /// Accept tensors the architecture has no place for (e.g. a value head saved beside the LM). Off by default: an
    /// unknown tensor usually means the config does not describe the weights (say, 4 layers stored, 2 configured).
    /// </summary>
    public bool IgnoreUnknownTensors { get; init; }

    /// <summary>
    /// The head to give the model when it differs from the checkpoint's (null keeps the checkpoint's). A reward model
    /// or critic starts from an SFT checkpoint with <see cref="HeadKind.Scalar"/>: the trunk is loaded, the LM head is
    /// dropped and the scalar head initialised from <see cref="HeadSeed"/> (when the checkpoint has no <c>score.weight</c>).
    /// Going the other way, a scalar checkpoint loaded with <see cref="HeadKind.LanguageModel"/> drops its score head.
    /// Honoured by <see cref="HfCheckpoint.Load"/>; <see cref="HfCheckpoint.LoadWeights"/> uses it to accept the dropped
    /// head's tensors and to initialise a missing scalar head.
    /// </summary>
    public HeadKind? Head { get; init; }

    /// <summary>Seed of a scalar head initialised because the checkpoint has none (see <see cref="Head"/>).</summary>
    public ulong HeadSeed { get; init; }
}

/// <summary>Options of <see cref="HfCheckpoint.Save"/>.</summary>
public sealed record HfSaveOptions
{
    /// <summary>Largest shard in bytes of tensor data; larger checkpoints are split like <c>save_pretrained</c> does (its default, 5 GB).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;

    /// <summary>
    /// Storage type of the weights: <see cref="SafetensorsDType.F32"/> (exact), <see cref="SafetensorsDType.BF16"/> or
    /// <see cref="SafetensorsDType.F16"/> (both rounded to nearest even, as PyTorch's <c>.to()</c> does); null (the
    /// default) saves in the model's <see cref="Transformer.StorageDType"/>, the dtype its checkpoint came in.
    /// <c>torch_dtype</c> in config.json names the type written.
    /// </summary>
    public SafetensorsDType? DType { get; init; }

    /// <summary>Model type and special-token ids to write into config.json; by default those the architecture implies, with no token ids.</summary>
    public HfModelConfig? Config { get; init; }

    /// <summary>A directory whose tokenizer files (<see cref="HfCheckpoint.TokenizerFiles"/>) are copied beside the weights.</summary>
    public string? TokenizerDirectory { get; init; }

    /// <summary>
    /// A chat template to store with the checkpoint (the <c>chat_template</c> of tokenizer_config.json, written after the
    /// tokenizer files are copied), so that later commands render chats the way the model was trained; null keeps
    /// whatever template the copied files carry.
    /// </summary>
    public ChatTemplate? ChatTemplate { get; init; }
}

/// <summary>
/// Hugging Face checkpoint directories: <c>config.json</c> plus <c>model.safetensors</c>, or
/// <c>model.safetensors.index.json</c> and its shards, for model types gpt2, llama, qwen2 and mistral. Weights stored as
/// F32, BF16 or F16 are converted to float32 on load (exactly), and the model remembers the type
/// (<see cref="Transformer.StorageDType"/>) so that a save writes it back in the same one unless told otherwise. Faults in the files, and config.json sizes the weights do not
/// have, throw <see cref="InputException"/> naming the file, the field or tensor and what is wrong, before any of the
/// model's buffers is allocated.
/// </summary>
public static partial class HfCheckpoint
{
    /// <summary>The config file name.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The single-file weights name.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The shard index name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Largest shard index accepted, in bytes (a real one lists every tensor name once: well under a MiB).</summary>
    public const int MaxIndexBytes = 64 << 20;

    /// <summary>Tokenizer and generation files a checkpoint carries along with the weights.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
        "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
    ];

    /// <summary>Reads <c>config.json</c> from a checkpoint directory, or the config file itself when given a file path.</summary>
    public static HfModelConfig ReadConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file = Directory.Exists(path) ? Path.Combine(path, ConfigFile) : path;
        if (!File.Exists(file) && !Directory.Exists(file))
        {
            throw new InputException(
                path, null, null, Directory.Exists(path) ? $"no {ConfigFile} in this directory; a Hugging Face checkpoint needs one" : "no such file or directory");
        }

        return HfConfig.ReadFile(file);
    }

    /// <summary>
    /// Creates a model from a checkpoint directory: its config, then every weight. Every tensor's name, shape and dtype is
    /// checked against the config from the safetensors headers before the model's buffers are allocated, so a config.json
    /// that claims more than the weights hold fails at once and allocates nothing.
    /// </summary>
    public static Transformer Load(string directory, Backend backend, bool trainable = true, HfLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options ??= new HfLoadOptions();
        var config = ReadConfig(directory).Model;
        if (options.Head is HeadKind head)
        {
            config = config with { Head = head };
        }

        using var files = CheckpointFiles.Open(directory);
        var weights = Resolve(files, config, directory, options);
        var model = new Transformer(config, backend, trainable);
        try
        {
            weights.CopyInto(model);
            model.StorageDType = weights.StorageDType;
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads every parameter of <paramref name="model"/> from the safetensors weights of <paramref name="directory"/>.
    /// Every tensor is checked (present once, shape, dtype) before any is copied, so a bad checkpoint leaves the model as it was.
    /// The model's <see cref="Transformer.StorageDType"/> is kept: a resume reads float32 training checkpoints into a
    /// model that still saves in the dtype it was first loaded in.
    /// </summary>
    public static void LoadWeights(Transformer model, string directory, HfLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        using var files = CheckpointFiles.Open(directory);
        Resolve(files, model.Config, directory, options ?? new HfLoadOptions()).CopyInto(model);
    }

    // Finds and checks every tensor a model of config has, reading only headers (and, for a tied head, the two tables).
    private static ResolvedWeights Resolve(CheckpointFiles files, TransformerConfig config, string directory, HfLoadOptions options)
    {
        var mismatch = new ConfigMismatch(Path.Combine(directory, ConfigFile), config, files);
        var resolved = new Dictionary<string, StoredTensor>(StringComparer.Ordinal);
        bool initializeScoreHead = false;
        foreach (var map in HfWeightMap.For(config))
        {
            var stored = files.Find(map.HfName, config.Architecture);
            if (stored is null && map.EngineName == Names.ScoreWeight && options.Head == HeadKind.Scalar)
            {
                initializeScoreHead = true;
                continue;
            }

            if (stored is null)
            {
                mismatch.ThrowIfLayersMissing(map.HfName);
                string hint = map.EngineName == Names.ScoreWeight
                    ? " (a language-model checkpoint: load it with HfLoadOptions.Head = Scalar to start a reward model or critic from it)"
                    : "";
                throw new InputException(files.Describe(), null, null, $"tensor '{map.HfName}' is missing (expected shape {map.HfShape}){hint}");
            }

            CheckShapeAndType(stored, map.HfShape, mismatch);
            resolved.Add(map.HfName, stored);
        }

        var used = new HashSet<string>(resolved.Values.Select(t => t.Info.Name), StringComparer.Ordinal);

        // The head the model does not have: an LM head when loading as a scalar model, or the score head when loading
        // as a language model, is accepted (not an unknown tensor) only when the caller asked for the swap.
        if (options.Head == config.Head)
        {
            string other = config.Head == HeadKind.Scalar ? HfWeightMap.LmHead : HfWeightMap.ScoreWeight;
            if (files.Find(other, config.Architecture) is { } dropped)
            {
                used.Add(dropped.Info.Name);
            }
        }

        var (scoreBias, rewardStatistics) = config.Head == HeadKind.Scalar && !initializeScoreHead ? RewardHeadFile.Read(directory) : (0f, null);
        if (config.Head == HeadKind.LanguageModel && config.TiedEmbeddings && files.Find(HfWeightMap.LmHead, config.Architecture) is { } head)
        {
            var embedding = resolved[HfWeightMap.For(config)[0].HfName];
            CheckShapeAndType(head, new Core.Tensors.Shape(config.VocabSize, config.Channels), mismatch);
            if (!head.Read().AsSpan().SequenceEqual(embedding.Read()))
            {
                throw new InputException(
                    head.File.Path, null, null,
                    "tensor 'lm_head.weight' differs from the token embedding, but config.json sets tie_word_embeddings; set it to false to load an untied head");
            }

            used.Add(head.Info.Name);
        }

        var unknown = files.Names.Where(n => !used.Contains(n) && !IsBuffer(n)).ToList();
        if (!options.IgnoreUnknownTensors && unknown.Count > 0)
        {
            throw new InputException(
                files.Describe(), null, null,
                $"{unknown.Count} tensor(s) do not belong to a {config.Layers}-layer {HfConfig.DefaultModelType(config)} model of this config, " +
                $"e.g. '{unknown[0]}' (pass IgnoreUnknownTensors to load anyway)");
        }

        return new ResolvedWeights(resolved, initializeScoreHead, options.HeadSeed, scoreBias, rewardStatistics, StorageOf(resolved.Values));
    }

    /// <summary>
    /// Saves <paramref name="model"/> as a checkpoint directory <c>transformers</c> loads: config.json and
    /// model.safetensors (or shards and an index when the weights exceed <see cref="HfSaveOptions.MaxShardBytes"/>), each
    /// file replaced atomically. Tied models store no <c>lm_head.weight</c>, as <c>save_pretrained</c> does. A scalar-head
    /// model is saved as <c>*ForSequenceClassification</c> with <c>score.weight</c>, and its bias and reward statistics
    /// in <see cref="RewardHeadFile"/>. Weight files of the other layout left from an earlier save are removed so the
    /// directory has one unambiguous set.
    /// </summary>
    public static void Save(Transformer model, string directory, HfSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new HfSaveOptions();
        SafetensorsDType dtype = options.DType ?? model.StorageDType;
        if (!dtype.IsWeightStorage())
        {
            throw new ArgumentException($"weights can be saved as F32, BF16 or F16, not {dtype.HeaderName()}", nameof(options));
        }

        if (options.MaxShardBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"MaxShardBytes must be positive, got {options.MaxShardBytes}");
        }

        Directory.CreateDirectory(directory);
        var config = (options.Config ?? HfModelConfig.For(model.Config)) with { Model = model.Config, TorchDtype = dtype.TorchName() };
        string configJson = HfConfig.ToJson(config);

        // Greedy in state-dict order, a new shard when the next tensor would overflow this one (as save_pretrained does).
        var shards = new List<List<HfTensor>> { new() };
        long shardBytes = 0, totalBytes = 0;
        int elementSize = dtype.SizeOf();
        foreach (var map in HfWeightMap.For(model.Config))
        {
            long bytes = map.HfShape.ElementCount * elementSize;
            if (shards[^1].Count > 0 && shardBytes + bytes > options.MaxShardBytes)
            {
                shards.Add([]);
                shardBytes = 0;
            }

            shards[^1].Add(map);
            shardBytes += bytes;
            totalBytes += bytes;
        }

        var written = new HashSet<string>(StringComparer.Ordinal);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int s = 0; s < shards.Count; s++)
        {
            string name = shards.Count == 1
                ? WeightsFile
                : string.Create(CultureInfo.InvariantCulture, $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors");
            var writer = new SafetensorsWriter();
            writer.Metadata["format"] = "pt";
            foreach (var map in shards[s])
            {
                float[] data = model.ReadHuggingFaceTensor(map.HfName);
                var shape = Enumerable.Range(0, map.HfShape.Rank).Select(i => map.HfShape[i]).ToArray();
                switch (dtype)
                {
                    case SafetensorsDType.F32: writer.AddF32(map.HfName, data, shape); break;
                    case SafetensorsDType.BF16: writer.AddBf16(map.HfName, data, shape); break;
                    default: writer.AddF16(map.HfName, data, shape); break;
                }

                weightMap[map.HfName] = name;
            }

            writer.Save(Path.Combine(directory, name));
            written.Add(name);
        }

        if (shards.Count > 1)
        {
            WriteAtomically(Path.Combine(directory, IndexFile), IndexJson(totalBytes, weightMap));
            written.Add(IndexFile);
        }

        foreach (string stale in Directory.EnumerateFiles(directory).Select(Path.GetFileName).OfType<string>()
                     .Where(n => !written.Contains(n) && (n == WeightsFile || n == IndexFile || ShardName().IsMatch(n))).ToList())
        {
            File.Delete(Path.Combine(directory, stale));
        }

        string rewardHead = Path.Combine(directory, RewardHeadFile.FileName);
        if (model.HasScalarHead)
        {
            RewardHeadFile.Write(directory, model.ScoreBias, model.RewardStatistics);
        }
        else if (File.Exists(rewardHead))
        {
            File.Delete(rewardHead);
        }

        WriteAtomically(Path.Combine(directory, ConfigFile), configJson);
        if (options.TokenizerDirectory is { } source)
        {
            CopyTokenizerFiles(source, directory);
        }

        if (options.ChatTemplate is { } template)
        {
            SaveChatTemplate(directory, template);
        }
    }

    /// <summary>Copies the tokenizer and generation files present in <paramref name="source"/> into <paramref name="destination"/>.</summary>
    public static int CopyTokenizerFiles(string source, string destination)
    {
        if (!Directory.Exists(source))
        {
            throw new InputException(source, null, null, "tokenizer directory not found");
        }

        if (string.Equals(Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(destination).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal))
        {
            return 0;
        }

        int copied = 0;
        foreach (string name in TokenizerFiles)
        {
            string from = Path.Combine(source, name);
            if (File.Exists(from))
            {
                File.Copy(from, Path.Combine(destination, name), overwrite: true);
                copied++;
            }
        }

        return copied;
    }

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$", RegexOptions.CultureInvariant)]
    private static partial Regex ShardName();

    // Non-parameter buffers old checkpoints carry: GPT-2's causal mask (attn.bias, attn.masked_bias) and Llama's
    // precomputed RoPE frequencies. Engine computes both itself.
    private static bool IsBuffer(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal)
        || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    // The one dtype the weights are stored in; a checkpoint that mixes them is saved back in the widest (F32), so that
    // nothing it held is rounded away.
    private static SafetensorsDType StorageOf(IEnumerable<StoredTensor> tensors)
    {
        var types = tensors.Select(t => t.Info.DType).Distinct().ToList();
        return types.Count == 1 ? types[0] : SafetensorsDType.F32;
    }

    private static void CheckShapeAndType(StoredTensor stored, Core.Tensors.Shape expected, ConfigMismatch mismatch)
    {
        var info = stored.Info;
        if (!info.DType.IsWeightStorage())
        {
            throw new InputException(
                stored.File.Path, null, null, $"tensor '{info.Name}' is stored as {info.DType.HeaderName()}; weights must be F32, BF16 or F16");
        }

        bool same = info.Shape.Count == expected.Rank && Enumerable.Range(0, expected.Rank).All(i => info.Shape[i] == expected[i]);
        if (!same)
        {
            string detail = $"tensor '{info.Name}' has shape [{string.Join(", ", info.Shape)}], the config needs {expected}";
            mismatch.ThrowIfOneSize(info, expected, $"{detail} in {stored.File.Path}");
            throw new InputException(stored.File.Path, null, null, detail);
        }
    }

    private static string IndexJson(long totalBytes, SortedDictionary<string, string> weightMap)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            w.WriteNumber("total_size", totalBytes);
            w.WriteEndObject();
            w.WriteStartObject("weight_map");
            foreach ((string tensor, string file) in weightMap)
            {
                w.WriteString(tensor, file);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static void WriteAtomically(string path, string text)
    {
        string temp = $"{Path.GetFullPath(path)}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(temp, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>The checked tensors of a checkpoint and what to do with the head, ready to copy into a model of the config.</summary>
    private sealed record ResolvedWeights(
        Dictionary<string, StoredTensor> Tensors, bool InitializeScoreHead, ulong HeadSeed, float ScoreBias, RewardStatistics? Statistics,
        SafetensorsDType StorageDType)
    {
        public void CopyInto(Transformer model)
        {
            model.LoadHuggingFaceWeights((name, shape) => Tensors.TryGetValue(name, out var t) ? t.Read() : new float[shape.ElementCount]);
            if (InitializeScoreHead)
            {
                model.InitializeScoreHead(HeadSeed);
            }
            else if (model.Config.Head == HeadKind.Scalar)
            {
                model.ScoreBias = ScoreBias;
                model.RewardStatistics = Statistics;
            }
        }
    }

    /// <summary>Blames config.json's field when the weights disagree with one of its sizes.</summary>
    private sealed partial class ConfigMismatch(string configPath, TransformerConfig config, CheckpointFiles files)
    {
        /// <summary>A layer tensor is missing because config.json counts more layers than the weights hold: names the layer field.</summary>
        public void ThrowIfLayersMissing(string tensor)
        {
            int stored = files.Names.Select(n => LayerIndex().Match(n)).Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture) + 1).DefaultIfEmpty(0).Max();
            if (LayerIndex().IsMatch(tensor) && stored < config.Layers)
            {
                throw new InputException(
                    configPath, null, Field(nameof(TransformerConfig.Layers)),
                    $"{config.Layers} layers do not fit the weights ({stored} found in {files.Describe()})");
            }
        }

        /// <summary>A tensor whose shape differs from the config's in one dimension that is one of config.json's sizes.</summary>
        public void ThrowIfOneSize(TensorInfo stored, Core.Tensors.Shape expected, string detail)
        {
            if (stored.Shape.Count != expected.Rank)
            {
                return;
            }

            var differing = Enumerable.Range(0, expected.Rank).Where(i => stored.Shape[i] != expected[i]).ToList();
            if (differing.Count != 1)
            {
                return;
            }

            long wanted = expected[differing[0]];
            (string Property, long Value)[] sizes =
            [
                (nameof(TransformerConfig.VocabSize), config.VocabSize), (nameof(TransformerConfig.MaxSequenceLength), config.MaxSequenceLength),
                (nameof(TransformerConfig.Channels), config.Channels), (nameof(TransformerConfig.HiddenChannels), config.MlpChannels),
            ];
            foreach (var (property, value) in sizes)
            {
                if (value == wanted)
                {
                    throw new InputException(
                        configPath, null, Field(property), $"{value} does not fit the weights: {detail} (the weights have {stored.Shape[differing[0]]})");
                }
            }
        }

        private string Field(string property) => HfConfig.JsonField(property, config.Architecture);

        [GeneratedRegex(@"\.(?:h|layers)\.(\d{1,9})\.", RegexOptions.CultureInvariant)]
        private static partial Regex LayerIndex();
    }

    /// <summary>One tensor in one opened file.</summary>
    private sealed record StoredTensor(SafetensorsFile File, TensorInfo Info)
    {
        public float[] Read() => File.ReadF32(Info.Name);
    }

    /// <summary>The opened weight files of a directory and which file holds each tensor.</summary>
    private sealed class CheckpointFiles : IDisposable
    {
        private readonly List<SafetensorsFile> files = [];
        private readonly Dictionary<string, StoredTensor> byName = new(StringComparer.Ordinal);
        private string source = "";

        public IEnumerable<string> Names => byName.Keys;

        public static CheckpointFiles Open(string directory)
        {
            if (!Directory.Exists(directory))
            {
                throw new InputException(directory, null, null, "checkpoint directory not found");
            }

            var result = new CheckpointFiles();
            try
            {
                string single = Path.Combine(directory, WeightsFile), index = Path.Combine(directory, IndexFile);
                if (File.Exists(single))
                {
                    // transformers prefers the single file too when both exist.
                    result.source = single;
                    result.Add(SafetensorsFile.Open(single), expected: null);
                }
                else if (File.Exists(index))
                {
                    result.source = index;
                    result.OpenShards(directory, index);
                }
                else
                {
                    string hint = File.Exists(Path.Combine(directory, "pytorch_model.bin"))
                        ? " (pytorch_model.bin is a pickle, which Engine does not read; convert it to safetensors)"
                        : "";
                    throw new InputException(directory, null, null, $"neither {WeightsFile} nor {IndexFile} found{hint}");
                }

                return result;
            }
            catch
            {
                result.Dispose();
                throw;
            }
        }

        public string Describe() => source;

        /// <summary>The tensor for an HF name; GPT-2 checkpoints may also store it without the <c>transformer.</c> prefix.</summary>
        public StoredTensor? Find(string hfName, Architecture architecture)
        {
            byName.TryGetValue(hfName, out var direct);
            const string prefix = "transformer.";
            if (architecture != Architecture.Gpt2 || !hfName.StartsWith(prefix, StringComparison.Ordinal))
            {
                return direct;
            }

            byName.TryGetValue(hfName[prefix.Length..], out var bare);
            if (direct is not null && bare is not null)
            {
                throw new InputException(source, null, null, $"tensor '{hfName}' is stored twice, with and without the '{prefix}' prefix");
            }

            return direct ?? bare;
        }

        public void Dispose()
        {
            foreach (var f in files)
            {
                f.Dispose();
            }
        }

        private void OpenShards(string directory, string index)
        {
            var shardOf = ReadIndex(directory, index);
            foreach (var shard in shardOf.Values.Distinct(StringComparer.Ordinal))
            {
                string field = $"weight_map['{shardOf.First(kv => kv.Value == shard).Key}']";
                if (!File.Exists(Path.Combine(directory, shard)) && !Directory.Exists(Path.Combine(directory, shard)))
                {
                    throw new InputException(index, null, field, $"shard '{shard}' is listed but not present in {directory}");
                }

                string path = InputFiles.ResolveInside(directory, shard, index, field);
                var expected = shardOf.Where(kv => kv.Value == shard).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
                Add(SafetensorsFile.Open(path), expected);
            }
        }

        private static Dictionary<string, string> ReadIndex(string directory, string index)
        {
            using (var doc = JsonFiles.Read(index, MaxIndexBytes, 64, "a shard index"))
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object
                    || !doc.RootElement.TryGetProperty("weight_map", out var weightMap) || weightMap.ValueKind != JsonValueKind.Object)
                {
                    throw new InputException(index, null, "weight_map", "is missing or not an object");
                }

                string root = Path.GetFullPath(directory);
                var shardOf = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var entry in weightMap.EnumerateObject())
                {
                    if (entry.Value.ValueKind != JsonValueKind.String)
                    {
                        throw new InputException(index, null, $"weight_map['{entry.Name}']", $"must be a file name, got {entry.Value.GetRawText()}");
                    }

                    string shard = entry.Value.GetString()!;
                    string full = Path.GetFullPath(Path.Combine(root, shard));
                    if (shard.Length == 0 || shard.Contains('/', StringComparison.Ordinal) || shard.Contains('\\', StringComparison.Ordinal)
                        || shard is "." or ".." || Path.IsPathRooted(shard) || Path.GetDirectoryName(full) != root.TrimEnd(Path.DirectorySeparatorChar))
                    {
                        throw new InputException(index, null, $"weight_map['{entry.Name}']", $"'{shard}' is not a file name inside the checkpoint directory");
                    }

                    if (!shardOf.TryAdd(entry.Name, shard))
                    {
                        throw new InputException(index, null, "weight_map", $"tensor '{entry.Name}' is listed twice in weight_map");
                    }
                }

                return shardOf;
            }
        }

        private void Add(SafetensorsFile file, HashSet<string>? expected)
        {
            files.Add(file);
            foreach (var info in file.Tensors)
            {
                if (byName.TryGetValue(info.Name, out var other))
                {
                    throw new InputException(file.Path, null, null, $"tensor '{info.Name}' is stored in two shards: {other.File.Path} and {file.Path}");
                }

                if (expected is not null && !expected.Contains(info.Name))
                {
                    throw new InputException(file.Path, null, null, $"tensor '{info.Name}' is not listed for this shard in {source}");
                }

                byName.Add(info.Name, new StoredTensor(file, info));
            }

            if (expected is not null && expected.FirstOrDefault(n => !byName.ContainsKey(n)) is { } absent)
            {
                throw new InputException(source, null, "weight_map", $"tensor '{absent}' is listed in {Path.GetFileName(file.Path)}, which does not contain it");
            }
        }
    }
}
