using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Engine.Core;
using Engine.Core.IO;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;

namespace Engine.Training.Objectives;

/// <summary>Where DPO gets the reference model's sequence log-probs log π_ref(y|x) of a batch's rows.</summary>
public interface IReferenceLogProbs
{
    /// <summary>Writes Σ_t m_t·log π_ref(y_t | y_&lt;t, x) over the response tokens of every row of <paramref name="batch"/> into <paramref name="destination"/> [R].</summary>
    void SequenceLogProbs(PreferenceBatch batch, Span<float> destination);
}

/// <summary>
/// A frozen reference model kept in memory and run forward on every batch (no gradients are taken). A reference is
/// always a base model: a model with LoRA adapters is run with them disabled, so a LoRA policy serves as its own
/// reference with no second copy of the weights (<see cref="Transformer.AdaptersDisabled"/>).
/// </summary>
public sealed class ReferenceModel : IReferenceLogProbs, IDisposable
{
    private readonly SequenceLogProbs pass;

    /// <summary>Wraps <paramref name="model"/> (typically created with trainable: false); the caller keeps ownership of it.</summary>
    public ReferenceModel(Transformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.HasScalarHead)
        {
            throw new ArgumentException("the reference model needs a language-model head, not a scalar head", nameof(model));
        }

        Model = model;
        pass = new SequenceLogProbs(model.Backend);
    }

    /// <summary>The reference model.</summary>
    public Transformer Model { get; }

    /// <inheritdoc/>
    public void SequenceLogProbs(PreferenceBatch batch, Span<float> destination) => SequenceLogProbs(batch, destination, default);

    /// <summary>
    /// As <see cref="SequenceLogProbs(PreferenceBatch, Span{float})"/>, and also writes every position's token log-prob
    /// log π(y_t | y_&lt;t, x) into <paramref name="tokens"/> [R·T] (row-major; the response tokens are where the batch's
    /// loss mask is 1), from the same fused pass (nothing when <paramref name="tokens"/> is empty).
    /// </summary>
    public void SequenceLogProbs(PreferenceBatch batch, Span<float> destination, Span<float> tokens)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!tokens.IsEmpty && tokens.Length < batch.Rows * batch.Time)
        {
            throw new ArgumentException($"tokens holds {tokens.Length} values; the batch has R·T = {batch.Rows * batch.Time} positions", nameof(tokens));
        }

        using var baseOnly = Model.AdaptersDisabled();
        var hidden = Model.Forward(batch.Sequences.Tokens, batch.Rows, batch.Time);
        pass.Forward(Model, hidden, batch, destination, tokens);
    }

    /// <inheritdoc/>
    public void Dispose() => pass.Dispose();
}

/// <summary>
/// Reference sequence log-probs computed once and cached on disk, so the reference model need not stay in memory
/// during DPO. Entries are keyed by a hash of each row's content (tokens and which of them are response tokens, padding
/// excluded), so batch composition, order and padding do not matter. The file records the key of the whole dataset
/// and of the reference model; a cache whose keys differ from the run's is stale and is recomputed.
/// </summary>
public sealed class ReferenceLogProbCache : IReferenceLogProbs
{
    /// <summary>The <c>format</c> metadata of the cache file.</summary>
    public const string Format = "engine-reference-logprobs/1";

    private readonly Dictionary<UInt128, float> table;

    private ReferenceLogProbCache(Dictionary<UInt128, float> table, string datasetKey, string referenceKey)
    {
        this.table = table;
        DatasetKey = datasetKey;
        ReferenceKey = referenceKey;
    }

    /// <summary>Hash of every row of the dataset the cache was computed on, in order (<see cref="DatasetKeyOf"/>).</summary>
    public string DatasetKey { get; }

    /// <summary>Identity of the reference model (<see cref="ModelKey"/> or <see cref="CheckpointKey"/>).</summary>
    public string ReferenceKey { get; }

    /// <summary>Number of distinct rows held.</summary>
    public int Count => table.Count;

    /// <summary>A hex SHA-256 over the content keys of every row of <paramref name="batches"/>, in order.</summary>
    public static string DatasetKeyOf(IEnumerable<PreferenceBatch> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> key = stackalloc byte[16];
        foreach (var batch in batches)
        {
            for (int r = 0; r < batch.Rows; r++)
            {
                BinaryPrimitives.WriteUInt128LittleEndian(key, RowKey(batch, r));
                hash.AppendData(key);
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>A hex SHA-256 of a model's configuration and every parameter value (the parameters are read back from the device).</summary>
    public static string ModelKey(Transformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $"{c.Architecture}|{c.Head}|{c.VocabSize}|{c.MaxSequenceLength}|{c.Layers}|{c.Channels}|{c.Heads}|{c.KvHeadCount}|{c.HeadChannels}|{c.MlpChannels}|{c.NormEpsilon:R}|{c.RopeTheta:R}|{c.AttentionBias}|{c.TiedEmbeddings}")));
        foreach (var p in model.Parameters.Parameters)
        {
            var values = new float[p.ElementCount];
            model.Backend.CopyToHost<float>(model.Parameters.Value(p.Name), values);
            hash.AppendData(Encoding.UTF8.GetBytes(p.Name));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// A hex SHA-256 of a checkpoint directory's config.json and weight files, read as bytes: identifies the
    /// reference without loading it, so a valid cache is used without ever creating the reference model.
    /// </summary>
    public static string CheckpointKey(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new InputException(directory, null, null, "checkpoint directory not found");
        }

        var files = Directory.EnumerateFiles(directory)
            .Where(f => Path.GetFileName(f) is var n && (n == HfCheckpoint.ConfigFile || n.EndsWith(".safetensors", StringComparison.Ordinal) || n == HfCheckpoint.IndexFile))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (!files.Any(f => f.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            throw new InputException(directory, null, null, "no safetensors weights to identify the reference model by");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (string file in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file)));
            using var stream = InputFiles.OpenRead(file, "a reference checkpoint file");
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Runs <paramref name="reference"/> over every batch and keeps each row's sequence log-prob.
    /// <paramref name="referenceKey"/> defaults to <see cref="ModelKey"/> of the model.
    /// </summary>
    public static ReferenceLogProbCache Compute(Transformer reference, IReadOnlyList<PreferenceBatch> batches, string? referenceKey = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(batches);
        var table = new Dictionary<UInt128, float>();
        using var model = new ReferenceModel(reference);
        foreach (var batch in batches)
        {
            var values = new float[batch.Rows];
            model.SequenceLogProbs(batch, values);
            for (int r = 0; r < batch.Rows; r++)
            {
                table[RowKey(batch, r)] = values[r];
            }
        }

        return new ReferenceLogProbCache(table, DatasetKeyOf(batches), referenceKey ?? ModelKey(reference));
    }

    /// <summary>
    /// The cache at <paramref name="path"/> when its dataset and reference keys match; otherwise computes it with the
    /// model <paramref name="openReference"/> returns (disposed afterwards unless <paramref name="keepReference"/>, so it is
    /// in memory only while computing; a LoRA policy lends its base and is kept) and saves it to <paramref name="path"/>.
    /// </summary>
    public static ReferenceLogProbCache LoadOrCompute(
        string path, IReadOnlyList<PreferenceBatch> batches, string referenceKey, Func<Transformer> openReference, bool keepReference = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentException.ThrowIfNullOrEmpty(referenceKey);
        ArgumentNullException.ThrowIfNull(openReference);
        string datasetKey = DatasetKeyOf(batches);
        if (TryLoad(path, datasetKey, referenceKey) is { } cached)
        {
            return cached;
        }

        var reference = openReference();
        var computed = Compute(reference, batches, referenceKey);
        if (!keepReference)
        {
            reference.Dispose();
        }

        computed.Save(path);
        return computed;
    }

    /// <summary>
    /// Loads the cache at <paramref name="path"/>; null when there is none or its keys differ (stale). A file that is
    /// not a reference log-prob cache throws <see cref="InputException"/> rather than being overwritten.
    /// </summary>
    public static ReferenceLogProbCache? TryLoad(string path, string datasetKey, string referenceKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            return null;
        }

        using var file = SafetensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("format", out var format) || format != Format)
        {
            throw new InputException(path, null, "__metadata__.format", $"not a reference log-prob cache (the format is not '{Format}'); give another path or delete the file");
        }

        if (file.Metadata.GetValueOrDefault("dataset_key") != datasetKey || file.Metadata.GetValueOrDefault("reference_key") != referenceKey)
        {
            return null;
        }

        var keys = file.ReadI32("keys");
        var values = file.ReadF32("logps");
        if (keys.Length != values.Length * 4L)
        {
            throw new InputException(path, null, "keys", $"holds {keys.Length} ints for {values.Length} log-probs; expected [{values.Length}, 4]");
        }

        var table = new Dictionary<UInt128, float>(values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            var key = new UInt128(((ulong)(uint)keys[(4 * i) + 3] << 32) | (uint)keys[(4 * i) + 2], ((ulong)(uint)keys[(4 * i) + 1] << 32) | (uint)keys[4 * i]);
            table[key] = values[i];
        }

        return new ReferenceLogProbCache(table, datasetKey, referenceKey);
    }

    /// <summary>Writes the cache as a safetensors file (<c>keys</c> I32 [M,4], <c>logps</c> F32 [M]) with both keys in its metadata.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var keys = new int[table.Count * 4];
        var values = new float[table.Count];
        int i = 0;
        foreach (var (key, value) in table.OrderBy(kv => kv.Key))
        {
            ulong lo = (ulong)key, hi = (ulong)(key >> 64);
            keys[4 * i] = (int)(uint)lo;
            keys[(4 * i) + 1] = (int)(uint)(lo >> 32);
            keys[(4 * i) + 2] = (int)(uint)hi;
            keys[(4 * i) + 3] = (int)(uint)(hi >> 32);
            values[i++] = value;
        }

        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = Format;
        writer.Metadata["dataset_key"] = DatasetKey;
        writer.Metadata["reference_key"] = ReferenceKey;
        writer.AddI32("keys", keys, table.Count, 4);
        writer.AddF32("logps", values, table.Count);
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        writer.Save(path);
    }

    /// <inheritdoc/>
    /// <exception cref="KeyNotFoundException">A row of the batch was not in the data the cache was computed on.</exception>
    public void SequenceLogProbs(PreferenceBatch batch, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(batch);
        for (int r = 0; r < batch.Rows; r++)
        {
            destination[r] = table.TryGetValue(RowKey(batch, r), out float value)
                ? value
                : throw new KeyNotFoundException(
                    $"row {r} of this batch is not in the reference log-prob cache (dataset {DatasetKey[..12]}); the data or its collation changed since it was computed");
        }
    }

    /// <summary>
    /// A 128-bit content key of row <paramref name="row"/>: SHA-256 (truncated) of its length, its tokens and its
    /// targets, without the padding, so the same response has the same key in any batch.
    /// </summary>
    public static UInt128 RowKey(PreferenceBatch batch, int row)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var s = batch.Sequences;
        int length = s.Lengths[row], start = row * s.Time;
        var bytes = new byte[4 + (8 * length)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, length);
        for (int t = 0; t < length; t++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 + (8 * t)), s.Tokens[start + t]);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8 + (8 * t)), s.Targets[start + t]);
        }

        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(bytes, digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }
}
