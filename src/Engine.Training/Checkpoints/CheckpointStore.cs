using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.IO;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Engine.Training.Checkpoints;

/// <summary>The write stages of a checkpoint, in order (a fault injected before any of them must leave the previous checkpoint loadable).</summary>
public enum CheckpointStage
{
    /// <summary>config.json, model.safetensors and tokenizer files into the temporary directory.</summary>
    Weights,
    /// <summary>optimizer.safetensors (AdamW moments).</summary>
    Optimizer,
    /// <summary>trainer_state.json, with the digests of the files above.</summary>
    State,
    /// <summary>The rename of the temporary directory to <c>checkpoint-&lt;step&gt;</c>.</summary>
    Publish,
    /// <summary>The <c>latest</c> pointer.</summary>
    Latest,
    /// <summary>Deletion of checkpoints beyond keep-last.</summary>
    Prune,
}

/// <summary>A complete checkpoint found on disk.</summary>
/// <param name="Path">Its directory.</param>
/// <param name="State">Its trainer state.</param>
public sealed record Checkpoint(string Path, TrainerState State);

/// <summary>
/// Checkpoints of one run under its output directory: <c>checkpoint-&lt;step&gt;/</c> in Hugging Face layout
/// (config.json, model.safetensors, tokenizer files) plus <c>optimizer.safetensors</c> (AdamW first and second moments
/// over the flat parameter buffer) and <c>trainer_state.json</c>. A checkpoint is written whole into a temporary
/// directory, its state file last (holding the size and SHA-256 of every other file), then renamed into place; then
/// the <c>latest</c> pointer file is replaced atomically, and only then are checkpoints beyond keep-last deleted. A
/// crash at any point leaves the previous checkpoint complete, and loading trusts a checkpoint only when every digest
/// matches, falling back to the newest one that does.
/// </summary>
public sealed partial class CheckpointStore
{
    /// <summary>Prefix of checkpoint directory names.</summary>
    public const string Prefix = "checkpoint-";

    /// <summary>The trainer-state file of a checkpoint.</summary>
    public const string StateFile = "trainer_state.json";

    /// <summary>The optimizer-moments file of a checkpoint.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>The directory under the output directory that a finished run's model is saved to.</summary>
    public const string FinalDirectory = "final";

    /// <summary>The file in the output directory naming the newest complete checkpoint.</summary>
    public const string LatestFile = "latest";

    /// <summary>The largest trainer_state.json read (a run's own is tens of kilobytes).</summary>
    public const long MaxStateBytes = 16L << 20;

    private const string TempPrefix = ".tmp-";
    private const string FirstMomentName = "exp_avg";
    private const string SecondMomentName = "exp_avg_sq";
    private const string LayoutKey = "parameter_layout";

    private readonly ILogger logger;

    /// <summary>A store under <paramref name="directory"/> (created on first save).</summary>
    public CheckpointStore(string directory, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = System.IO.Path.GetFullPath(directory);
        this.logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The output directory.</summary>
    public string Directory { get; }

    /// <summary>Called before each write stage; tests throw from it to simulate a crash there.</summary>
    internal Action<CheckpointStage>? BeforeStage { get; set; }

    /// <summary>The directory of the checkpoint of <paramref name="step"/>.</summary>
    public string PathOf(int step) => System.IO.Path.Combine(Directory, Prefix + step.ToString(CultureInfo.InvariantCulture));

    /// <summary>Checkpoint directories present (complete or not), newest first.</summary>
    public IReadOnlyList<(int Step, string Path)> List()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        return [.. System.IO.Directory.EnumerateDirectories(Directory, Prefix + "*")
            .Select(d => (Ok: int.TryParse(System.IO.Path.GetFileName(d).AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int s), Step: s, Path: d))
            .Where(x => x.Ok)
            .Select(x => (x.Step, x.Path))
            .OrderByDescending(x => x.Step)];
    }

    /// <summary>
    /// Writes the checkpoint of <paramref name="state"/>.GlobalStep and returns its directory. The weights are always
    /// stored as F32 so a resume is exact; <paramref name="format"/> supplies config fields and the tokenizer directory.
    /// </summary>
    /// <remarks>
    /// <paramref name="writeExtra"/>, when given, writes further files (or subdirectories, e.g. a second model through
    /// <see cref="WriteModel"/>) into the checkpoint's temporary directory after the optimizer moments; they are digested
    /// and published with the rest.
    /// </remarks>
    public string Save(Transformer model, TrainerState state, HfSaveOptions? format = null, int keepLast = 0, Action<string>? writeExtra = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        System.IO.Directory.CreateDirectory(Directory);
        SweepTemporaries();
        string final = PathOf(state.GlobalStep);
        string temp = System.IO.Path.Combine(Directory, $"{TempPrefix}{Prefix}{state.GlobalStep}-{Guid.NewGuid():N}");
        try
        {
            System.IO.Directory.CreateDirectory(temp);
            BeforeStage?.Invoke(CheckpointStage.Weights);
            SaveWeights(model, temp, format);

            BeforeStage?.Invoke(CheckpointStage.Optimizer);
            WriteMoments(model, System.IO.Path.Combine(temp, OptimizerFile));
            writeExtra?.Invoke(temp);

            BeforeStage?.Invoke(CheckpointStage.State);
            var saved = state.Clone();
            saved.Files = System.IO.Directory.EnumerateFiles(temp, "*", SearchOption.AllDirectories)
                .Select(f => System.IO.Path.GetRelativePath(temp, f).Replace('\\', '/'))
                .Order(StringComparer.Ordinal)
                .ToDictionary(n => n, n => Digest(System.IO.Path.Combine(temp, n)), StringComparer.Ordinal);
            WriteFileDurably(System.IO.Path.Combine(temp, StateFile), JsonSerializer.SerializeToUtf8Bytes(saved, TrainerState.Json));

            BeforeStage?.Invoke(CheckpointStage.Publish);
            Publish(temp, final);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }

        BeforeStage?.Invoke(CheckpointStage.Latest);
        string pointer = System.IO.Path.Combine(Directory, LatestFile);
        string pointerTemp = $"{pointer}.{Guid.NewGuid():N}.tmp";
        WriteFileDurably(pointerTemp, Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(final) + "\n"));
        File.Move(pointerTemp, pointer, overwrite: true);

        BeforeStage?.Invoke(CheckpointStage.Prune);
        if (keepLast > 0)
        {
            foreach (var (step, path) in List().Where(c => c.Step != state.GlobalStep).Skip(keepLast - 1))
            {
                logger.LogDebug("deleting checkpoint {Path} (keep_last = {KeepLast})", path, keepLast);
                TryDelete(path);
            }
        }

        return final;
    }

    /// <summary>
    /// Writes <paramref name="model"/> as a Hugging Face directory (F32 weights) with its AdamW moments in
    /// <c>optimizer.safetensors</c>, the form <see cref="Restore"/> reads; for further models of one checkpoint.
    /// </summary>
    public static void WriteModel(Transformer model, string directory, HfSaveOptions? format = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        System.IO.Directory.CreateDirectory(directory);
        SaveWeights(model, directory, format);
        WriteMoments(model, System.IO.Path.Combine(directory, OptimizerFile));
    }

    /// <summary>The newest checkpoint whose files all match their digests; older ones are tried when a newer one is incomplete or damaged. Null when none is usable.</summary>
    public Checkpoint? FindLatest()
    {
        foreach (var (_, path) in List())
        {
            try
            {
                return new Checkpoint(path, Verify(path));
            }
            catch (Exception e) when (e is InvalidDataException or IOException or JsonException or InputException)
            {
                logger.LogWarning("skipping damaged checkpoint {Path}, trying an older one: {Reason}", path, e.Message);
            }
        }

        return null;
    }

    /// <summary>
    /// Reads a checkpoint's trainer state and checks every file it lists against its size and SHA-256. The listed names
    /// must be regular files inside the checkpoint directory.
    /// </summary>
    /// <exception cref="InvalidDataException">The state is missing or unreadable, or a file is missing, truncated or altered.</exception>
    /// <exception cref="InputException">A field of the state is out of range, or a listed file lies outside the checkpoint or is not a regular file.</exception>
    public static TrainerState Verify(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string stateFile = System.IO.Path.Combine(path, StateFile);
        if (!File.Exists(stateFile))
        {
            throw new InvalidDataException($"{path}: no {StateFile}; the checkpoint is incomplete");
        }

        var state = TrainerState.Read(stateFile);
        if (!state.Files.ContainsKey(OptimizerFile) || !(state.Files.ContainsKey(HfCheckpoint.ConfigFile) || state.Files.ContainsKey(PeftAdapter.ConfigFile)))
        {
            throw new InvalidDataException($"{stateFile}: lists no {OptimizerFile}, or neither {HfCheckpoint.ConfigFile} nor {PeftAdapter.ConfigFile}");
        }

        foreach (var (name, expected) in state.Files)
        {
            string file = InputFiles.ResolveInside(path, name, stateFile, "files");
            var actual = Digest(file);
            if (actual.Size != expected.Size)
            {
                throw new InvalidDataException($"{file}: {actual.Size} bytes, the checkpoint recorded {expected.Size}");
            }

            if (!string.Equals(actual.Sha256, expected.Sha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{file}: contents differ from the SHA-256 the checkpoint recorded");
            }
        }

        return state;
    }

    /// <summary>Loads a checkpoint's weights and AdamW moments into <paramref name="model"/>; both are checked before anything is copied.</summary>
    public static void Restore(Transformer model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var parameters = model.TrainableParameters;
        string file = System.IO.Path.Combine(path, OptimizerFile);
        InputFiles.RegularFile(file, "the optimizer moments");
        using var moments = SafetensorsFile.Open(file);
        if (!moments.Metadata.TryGetValue(LayoutKey, out string? layout) || layout != Layout(model))
        {
            throw new InputException(file, null, LayoutKey,
                "the checkpoint was saved for a different model (architecture or sizes) than the one being resumed; resume with the model the run started from");
        }

        foreach (string name in (string[])[FirstMomentName, SecondMomentName])
        {
            var info = moments.GetTensor(name);
            if (info.DType != SafetensorsDType.F32 || info.Shape.Count != 1 || info.Shape[0] != parameters.ElementCount)
            {
                throw new InputException(file, null, name, $"not an F32 tensor of {parameters.ElementCount} elements, as this model's parameters need");
            }
        }

        if (model.Lora is { } adapters)
        {
            PeftAdapter.LoadValues(adapters, path);
        }
        else
        {
            HfCheckpoint.LoadWeights(model, path);
        }

        model.Backend.CopyFromHost<float>(parameters.FirstMoment, moments.ReadF32(FirstMomentName));
        model.Backend.CopyFromHost<float>(parameters.SecondMoment, moments.ReadF32(SecondMomentName));
    }

    // Names and shapes of the flat parameter buffer, in order: moments are only meaningful for the same layout.
    private static string Layout(Transformer model)
    {
        var text = string.Join(";", model.TrainableParameters.Parameters.Select(p => $"{p.Name}:{p.Shape}"));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    // A LoRA run's checkpoint holds the adapter in PEFT's layout (the frozen base is the run's --model); a full run's
    // holds the whole model.
    private static void SaveWeights(Transformer model, string directory, HfSaveOptions? format)
    {
        if (model.Lora is { } adapters)
        {
            PeftAdapter.Save(adapters, directory);
            if (format?.TokenizerDirectory is { } tokenizer)
            {
                HfCheckpoint.CopyTokenizerFiles(tokenizer, directory);
            }

            return;
        }

        HfCheckpoint.Save(model, directory, (format ?? new HfSaveOptions()) with { DType = SafetensorsDType.F32 });
    }

    private static void WriteMoments(Transformer model, string path)
    {
        var parameters = model.TrainableParameters;
        var host = new float[parameters.ElementCount];
        var writer = new SafetensorsWriter();
        writer.Metadata[LayoutKey] = Layout(model);
        model.Backend.CopyToHost<float>(parameters.FirstMoment, host);
        writer.AddF32(FirstMomentName, host, host.Length);
        model.Backend.CopyToHost<float>(parameters.SecondMoment, host);
        writer.AddF32(SecondMomentName, host, host.Length);
        writer.Save(path);
    }

    // A directory rename is atomic; an existing checkpoint of the same step (left damaged by an earlier crash) is
    // moved aside first and deleted only once the new one is in place.
    private static void Publish(string temp, string final)
    {
        string? stale = null;
        if (System.IO.Directory.Exists(final))
        {
            stale = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(final)!, $"{TempPrefix}stale-{Guid.NewGuid():N}");
            System.IO.Directory.Move(final, stale);
        }

        System.IO.Directory.Move(temp, final);
        if (stale is not null)
        {
            TryDelete(stale);
        }
    }

    /// <summary>
    /// Deletes what an interrupted save left behind (killed, or out of disk space): <c>.tmp-*</c> checkpoint directories,
    /// and <c>*.&lt;guid&gt;.tmp</c> files of atomic writes in the output directory and in <c>final/</c>. Returns what was removed.
    /// </summary>
    public IReadOnlyList<string> SweepTemporaries()
    {
        var removed = new List<string>();
        if (!System.IO.Directory.Exists(Directory))
        {
            return removed;
        }

        foreach (string dir in System.IO.Directory.EnumerateDirectories(Directory, TempPrefix + "*"))
        {
            if (TryDelete(dir))
            {
                removed.Add(dir);
            }
        }

        foreach (string folder in (string[])[Directory, System.IO.Path.Combine(Directory, FinalDirectory)])
        {
            if (!System.IO.Directory.Exists(folder))
            {
                continue;
            }

            foreach (string file in System.IO.Directory.EnumerateFiles(folder, "*.tmp").Where(f => AtomicWriteTemporary().IsMatch(System.IO.Path.GetFileName(f))))
            {
                try
                {
                    File.Delete(file);
                    removed.Add(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    logger.LogWarning("cannot remove {File}: {Reason}", file, e.Message);
                }
            }
        }

        return removed;
    }

    // The temporary name of an atomic write (this store's, HfCheckpoint's and SafetensorsWriter's): <name>.<32 hex>.tmp.
    [GeneratedRegex(@"\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant)]
    private static partial Regex AtomicWriteTemporary();

    private static FileDigest Digest(string path)
    {
        using var stream = File.OpenRead(path);
        return new FileDigest(stream.Length, Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    private static void WriteFileDurably(string path, byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    private static bool TryDelete(string directory)
    {
        try
        {
            if (System.IO.Directory.Exists(directory))
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }

            return true;
        }
        catch (IOException)
        {
            // One that cannot be removed now (open elsewhere) is tried again at the next save: temporaries are swept
            // and old checkpoints pruned anew.
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
            return false;
        }
    }
}
