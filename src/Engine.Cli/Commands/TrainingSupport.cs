using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Engine.Core.Backends;
using Engine.Core.IO;
using Engine.Models;
using Engine.Models.Chat;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Models.Tokenizers;
using Engine.Training;
using Engine.Training.Checkpoints;
using Engine.Training.Data;
using Engine.Training.Options;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>The flags every training command shares (<c>--config</c>, <c>--set</c>, <c>--model</c>, <c>--data</c>, ...).</summary>
internal sealed class TrainingFlags
{
    public Option<string?> Config { get; } = new("--config") { Description = "the trainer's options as JSON or YAML (snake_case keys, e.g. learning_rate, max_steps)" };
    public Option<string[]> Set { get; } = new("--set") { Description = "override an option: key=value (repeatable; dotted keys reach nested records)", DefaultValueFactory = _ => [] };
    public Option<string?> Model { get; } = new("--model") { Description = "a Hugging Face checkpoint directory (config.json + safetensors)" };
    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "a tokenizer.json (default: tokenizer.json in the --model directory)" };
    public Option<string> Data { get; } = new("--data") { Description = "the training data: JSONL, Parquet, or a directory of Parquet shards", Required = true };
    public Option<string?> EvalData { get; } = new("--eval-data") { Description = "validation data: JSONL, Parquet, or a directory of Parquet shards" };
    public Option<string> Out { get; } = new("--out") { Description = "where metrics.jsonl, checkpoints and final/ go", Required = true };
    public Option<bool> Resume { get; } = new("--resume") { Description = "continue from the newest complete checkpoint in --out" };
    public Option<string> Device { get; } = DeviceOption.Create();
    public Option<bool> Tf32 { get; } = DeviceOption.CreateTf32();
    public Option<int> Threads { get; } = new("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
    public Option<bool> SkipBadLines { get; } = new("--skip-bad-lines") { Description = "skip malformed dataset lines (each reported on stderr) instead of stopping" };
    public Option<string?> Lora { get; } = new("--lora")
    {
        Description = "train LoRA adapters over the frozen model instead of every weight: r=16,alpha=32,dropout=0.05,targets=all-linear (targets joined with +, e.g. q_proj+v_proj; rslora=true for α/√r); the reference is the base with adapters off",
    };

    public Option<string?> ChatTemplate { get; } = new("--chat-template") { Description = "chatml, llama3, alpaca or a .jinja file (default: the Jinja chat template of the tokenizer files, if any)" };
    public Option<string?> SaveDType { get; } = SaveDTypeOption.Create();

    /// <summary>A training command's description: <paramref name="summary"/>, then every trainer key of <paramref name="defaults"/>' record with its default and meaning.</summary>
    public static string Describe(string summary, TrainerOptions defaults) => $"{summary}\n\n{OptionsReader.HelpText(defaults)}";

    /// <summary>Adds the shared flags to <paramref name="command"/>; <paramref name="requireModel"/> makes --model required.</summary>
    public void AddTo(Command command, bool requireModel = true)
    {
        Model.Required = requireModel;
        Threads.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--threads must be at least 1");
            }
        });
        command.Add(Config);
        command.Add(Set);
        command.Add(Model);
        command.Add(Tokenizer);
        command.Add(Data);
        command.Add(EvalData);
        command.Add(Out);
        command.Add(Resume);
        command.Add(Device);
        command.Add(Tf32);
        command.Add(Threads);
        command.Add(SkipBadLines);
        command.Add(ChatTemplate);
        command.Add(SaveDType);
        command.Add(Lora);
    }
}

/// <summary>
/// What a training command resolved from its flags: the options record, the backend, the tokenizer as an
/// <see cref="ITextEncoder"/>, the chat template and the datasets; and the run itself (progress, Ctrl+C, final model).
/// </summary>
internal sealed class TrainingSession<TOptions> : IDisposable
    where TOptions : TrainerOptions, new()
{
    private readonly TrainingFlags flags;
    private readonly ParseResult parse;
    private readonly Lazy<ChatTemplate?> template;
    private RunDirectoryLock? runLock;
    private StopSignals? signals;

    // Said when training starts (not at Open), so a command refused for its flags or data prints its one error line only.
    private string? note;

    private TrainingSession(TrainingFlags flags, ParseResult parse, TOptions options, LoraConfig? lora, Backend backend, Tokenizer tokenizer, string tokenizerPath)
    {
        this.flags = flags;
        this.parse = parse;
        Options = options;
        Lora = lora;
        Backend = backend;
        Tokenizer = tokenizer;
        TokenizerPath = tokenizerPath;
        template = new Lazy<ChatTemplate?>(() => ModelInputs.Template(parse.GetValue(flags.ChatTemplate), tokenizerPath));
    }

    /// <summary>The exit code of a cancelled run: 128 + the number of the signal that stopped it (130 for Ctrl+C).</summary>
    public int CancelledExitCode => signals?.ExitCode ?? StopSignals.InterruptExitCode;

    public TOptions Options { get; }

    public Backend Backend { get; }

    public Tokenizer Tokenizer { get; }

    public string TokenizerPath { get; }

    public string? ModelDirectory => parse.GetValue(flags.Model);

    public string OutputDirectory => Options.OutputDirectory;

    /// <summary>The model's config.json fields (eos/bos ids, model type) when --model was given.</summary>
    public HfModelConfig? ModelConfig { get; set; }

    /// <summary>
    /// Reads the options (file, overrides, --out, --resume; a max_length left at its default cut to the model's context,
    /// and a sampling trainer's <paramref name="generated"/> length left at a default that leaves no room for a prompt
    /// halved, see <see cref="ContextLength"/>), the tokenizer, creates the backend, and locks --out for this run (another run
    /// there is refused before anything is written). <paramref name="context"/> is the shortest context of the run's
    /// models when they are not only --model's.
    /// </summary>
    public static TrainingSession<TOptions> Open(TrainingFlags flags, ParseResult parse, string? defaultTokenizerDirectory = null, int? context = null, GeneratedLength<TOptions>? generated = null)
    {
        string? config = parse.GetValue(flags.Config);
        var overrides = parse.GetValue(flags.Set) ?? [];
        var options = ReadOptions(config, overrides);
        options = options with { OutputDirectory = parse.GetValue(flags.Out)!, Resume = parse.GetValue(flags.Resume) || options.Resume };
        string? modelDir = parse.GetValue(flags.Model) is string given ? ModelInputs.ExistingDirectory(given, "--model") : null;
        var modelConfig = modelDir is null ? null : HfCheckpoint.ReadConfig(modelDir);
        string? note = null;
        if ((context ?? modelConfig?.Model.MaxSequenceLength) is int fit)
        {
            options = ContextLength.Fit(options, fit, OptionsReader.SetKeys(config, overrides), line => note = line, generated);
        }

        // A value out of range because of the cut (a max_completion_length of 300 set for a context of 256) says where max_length came from.
        OptionChecks.Validate(
            () =>
            {
                try
                {
                    options.Validate();
                }
                catch (ArgumentException e) when (note is not null)
                {
                    throw new ArgumentException($"{e.Message}; {note}", e);
                }
            },
            config);
        var lora = ReadLora(options, config, parse.GetValue(flags.Lora));
        ModelInputs.WritableDirectory(options.OutputDirectory, "--out");

        string tokenizerPath = ModelInputs.TokenizerPath(parse.GetValue(flags.Tokenizer), modelDir ?? defaultTokenizerDirectory);

        var tokenizer = ModelInputs.LoadTokenizer(tokenizerPath);

        var backend = DeviceOption.CreateBackend(parse.GetValue(flags.Device), parse.GetValue(flags.Threads), tf32: parse.GetValue(flags.Tf32) || options.Tf32);
        var session = new TrainingSession<TOptions>(flags, parse, options, lora, backend, tokenizer, tokenizerPath) { ModelConfig = modelConfig };
        try
        {
            session.runLock = RunDirectoryLock.Acquire(options.OutputDirectory);
            session.note = note;
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The options record of <typeparamref name="TOptions"/>: its defaults, then --config, then each --set.</summary>
    public static TOptions ReadOptions(string? config, IReadOnlyList<string> overrides)
    {
        var options = config is null ? new TOptions() : OptionsReader.ReadFile<TOptions>(config);
        return overrides.Count == 0 ? options : OptionsReader.Apply(options, overrides);
    }

    /// <summary>The LoRA settings (the options' <c>lora:</c> block, then the --lora keys over it), or null for full training.</summary>
    public LoraConfig? Lora { get; }

    /// <summary>
    /// The LoRA settings of a run: the <c>lora:</c> block of <paramref name="options"/> (from --config or --set, named
    /// as <paramref name="config"/> in errors), with the keys of the --lora <paramref name="spec"/> over it; null when neither is given.
    /// </summary>
    public static LoraConfig? ReadLora(TOptions options, string? config, string? spec)
    {
        var block = options.Lora?.ToConfig(config ?? OptionsReader.OverrideSource);
        return spec is null ? block : LoraConfig.Parse(spec, start: block);
    }

    /// <summary>
    /// Loads the model to train (--model, or <paramref name="directory"/>): with --lora, frozen with adapters attached
    /// (initialised from the run's seed, base_model_name_or_path the checkpoint's path; <paramref name="lora"/> instead of the run's settings when given); else trainable in full.
    /// </summary>
    public Transformer LoadPolicy(string? directory = null, HfLoadOptions? load = null, LoraConfig? lora = null)
    {
        lora ??= Lora;
        if (lora is null)
        {
            return LoadModel(directory, trainable: true, load);
        }

        string path = directory ?? ModelDirectory ?? throw new CommandException("--model is required");
        var model = LoadModel(path, trainable: false, load);
        try
        {
            model.AddLora(lora, Options.Seed).BaseModel = Path.GetFullPath(path);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads the --model checkpoint for training (or inference when <paramref name="trainable"/> is false); max_length must fit its context.</summary>
    public Transformer LoadModel(string? directory = null, bool trainable = true, HfLoadOptions? load = null)
    {
        var model = HfCheckpoint.Load(directory ?? ModelDirectory ?? throw new CommandException("--model is required"), Backend, trainable, load);
        try
        {
            LanguageModelTrainers.CheckLength(model, Options.MaxLength);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The end-of-sequence token: config.json's eos_token_id, else a conventional special token of the tokenizer.</summary>
    public int? EosTokenId => ModelInputs.EosTokenId(ModelConfig, Tokenizer);

    /// <summary>The tokenizer without added special tokens; BOS is the token its post-processor puts first, if any.</summary>
    public ITextEncoder Encoder => ModelInputs.Encoder(Tokenizer, EosTokenId);

    /// <summary>Padding: the EOS token when there is one (padding is never trained), else 0.</summary>
    public int PadTokenId => EosTokenId ?? 0;

    /// <summary>The chat template named by --chat-template, else the one in the tokenizer's directory, else none (resolved once).</summary>
    public ChatTemplate? Template => template.Value;

    /// <summary>The collator for <see cref="TrainerOptions.MaxLength"/>, the pad token and the template.</summary>
    public SequenceCollator Collator(CollatorOptions? options = null) =>
        new(Encoder, (options ?? new CollatorOptions()) with { MaxLength = Options.MaxLength, PadTokenId = PadTokenId }, Template);

    /// <summary>The --data examples.</summary>
    public List<Example> TrainData() => Read(parse.GetValue(flags.Data)!, "--data")!;

    /// <summary>The --eval-data examples, if given.</summary>
    public List<Example>? EvalData() => Read(parse.GetValue(flags.EvalData), "--eval-data");

    /// <summary>Reads a dataset whole (so a bad line or row stops the command before training starts).</summary>
    public List<Example>? Read(string? path, string flag)
    {
        if (path is null)
        {
            return null;
        }

        return ModelInputs.ReadExamples(path, flag, parse.GetValue(flags.SkipBadLines));
    }

    /// <summary>
    /// Checkpoint format: the model's config.json fields (with the model's current head), the tokenizer files, the
    /// --chat-template when it is not the one those files already carry (so later commands render chats as trained), and
    /// the --save-dtype (else the dtype the model's checkpoint came in).
    /// </summary>
    public HfSaveOptions SaveOptions(Transformer model) => new()
    {
        DType = SaveDTypeOption.Parse(parse.GetValue(flags.SaveDType)),
        Config = ModelConfig is null ? null : ModelConfig with { Model = model.Config },
        TokenizerDirectory = Path.GetDirectoryName(Path.GetFullPath(TokenizerPath)),
        ChatTemplate = parse.GetValue(flags.ChatTemplate) is not null && Template is { } chosen && !chosen.SameAs(ModelInputs.DirectoryTemplate(TokenizerPath)) ? chosen : null,
    };

    /// <summary>
    /// Runs <paramref name="trainer"/> with progress on the console, its warnings on stderr, and Ctrl+C, SIGTERM and
    /// SIGHUP as cancellation. Returns the result, or null when cancelled (a checkpoint was written and the reason
    /// printed; the command exits with <see cref="CancelledExitCode"/>).
    /// </summary>
    public TrainingResult? Run<TBatch>(Trainer<TBatch> trainer, string name)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        trainer.Logger = StderrLogger.Instance;
        return Run(trainer.Run, name);
    }

    /// <summary>
    /// Runs a training loop given as <paramref name="run"/> (e.g. <c>OnlineDpoTrainer.Run</c>) the way
    /// <see cref="Run{TBatch}(Trainer{TBatch}, string)"/> runs a trainer.
    /// </summary>
    public TrainingResult? Run(Func<IProgress<TrainingProgress>?, CancellationToken, TrainingResult> run, string name)
    {
        var result = RunCancellable(token => Console.IsOutputRedirected ? RunPlain(run, token) : RunFancy(run, name, token));
        if (result is null)
        {
            return null;
        }

        Console.Out.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{name}: {result.Steps} steps{(result.SkippedSteps > 0 ? $" ({result.SkippedSteps} skipped)" : "")}, loss {result.TrainLoss:F4}{(result.EvalLoss is double ev ? $", eval loss {ev:F4}" : "")}, {result.TokensSeen} tokens in {result.Elapsed.TotalSeconds:F1} s{(result.ResumedFrom is null ? "" : $" (resumed from {result.ResumedFrom})")}"));
        return result;
    }

    /// <summary>
    /// Runs a trainer with Ctrl+C, SIGTERM and SIGHUP as its cancellation. Returns the result, or null when it was
    /// cancelled (its checkpoint written; the line saying where and how to continue is printed here). The signals stay
    /// caught until the session ends, so one that arrives while the final model is saved does not cut the save short.
    /// </summary>
    public TrainingResult? RunCancellable(Func<CancellationToken, TrainingResult> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (note is not null)
        {
            ModelInputs.Note(note);
            note = null;
        }

        signals ??= new StopSignals();
        var result = run(signals.Token);
        if (result.Status == TrainingStatus.Cancelled)
        {
            Console.Error.WriteLine($"engine: cancelled at step {result.Steps}; checkpoint {result.LastCheckpoint ?? "(none)"}; continue with --resume");
            return null;
        }

        return result;
    }

    /// <summary>Saves <paramref name="model"/> to <c>--out/final</c> and says so.</summary>
    public string SaveFinal(Transformer model)
    {
        string final = Path.Combine(OutputDirectory, CheckpointStore.FinalDirectory);
        if (model.Lora is { } adapters)
        {
            // A LoRA run's result is the adapter (PEFT layout) with the tokenizer; `engine lora merge` makes a full checkpoint.
            PeftAdapter.Save(adapters, final);
            HfCheckpoint.CopyTokenizerFiles(SaveOptions(model).TokenizerDirectory!, final);
        }
        else
        {
            HfCheckpoint.Save(model, final, SaveOptions(model));
        }

        Console.Out.WriteLine($"saved {final}");
        return final;
    }

    public void Dispose()
    {
        Backend.Dispose();
        signals?.Dispose();
        runLock?.Dispose();
    }

    private TrainingResult RunPlain(Func<IProgress<TrainingProgress>?, CancellationToken, TrainingResult> run, CancellationToken token)
    {
        int lastStep = 0;
        double? lastEval = null;
        var clock = Stopwatch.StartNew();
        int interval = Options.LogInterval;
        var progress = new InlineProgress<TrainingProgress>(p =>
        {
            if (p.Step != lastStep && (p.Step % interval == 0 || p.Step == p.TotalSteps))
            {
                lastStep = p.Step;
                Console.Out.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:E2}  grad_norm {p.GradNorm:F3}  tokens/s {p.TokensPerSecond:F0}{(p.SkippedSteps > 0 ? $"  skipped {p.SkippedSteps}" : "")}  eta {Eta(clock.Elapsed, p):hh\\:mm\\:ss}"));
            }

            if (p.EvalLoss is double e && e != lastEval)
            {
                lastEval = e;
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps}  eval_loss {e:F4}"));
            }
        });
        return run(progress, token);
    }

    private static TrainingResult RunFancy(Func<IProgress<TrainingProgress>?, CancellationToken, TrainingResult> run, string name, CancellationToken token) =>
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(name);
                var progress = new InlineProgress<TrainingProgress>(p =>
                {
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    task.Description = string.Create(
                        CultureInfo.InvariantCulture,
                        $"{name} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4}{(p.EvalLoss is double e ? $" eval {e:F4}" : "")}{(p.SkippedSteps > 0 ? $" skipped {p.SkippedSteps}" : "")} {p.TokensPerSecond:F0} tok/s");
                });
                return run(progress, token);
            });

    private static TimeSpan Eta(TimeSpan elapsed, TrainingProgress p) =>
        p.Step <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(elapsed.TotalSeconds / p.Step * Math.Max(0, p.TotalSteps - p.Step));
}

/// <summary>What every command that feeds text to a model resolves the same way: tokenizer, encoder, EOS, template, datasets.</summary>
internal static class ModelInputs
{
    /// <summary><paramref name="path"/> when it is a directory; otherwise one error naming <paramref name="flag"/>.</summary>
    public static string ExistingDirectory(string path, string flag) =>
        Directory.Exists(path) ? path : throw new CommandException($"{flag}: directory '{path}' does not exist");

    /// <summary>Prints a note line on stderr: <c>engine: note: ...</c>.</summary>
    public static void Note(string note) => Console.Error.WriteLine($"engine: note: {note}");

    /// <summary>The context (longest sequence) of the checkpoint in <paramref name="directory"/>, which must exist (named as <paramref name="flag"/>).</summary>
    public static int Context(string directory, string flag) => HfCheckpoint.ReadConfig(ExistingDirectory(directory, flag)).Model.MaxSequenceLength;

    /// <summary>Prints a warning line on <paramref name="to"/> (stderr by default): <c>engine: warning: ...</c>.</summary>
    public static void Warn(string warning, TextWriter? to = null) => (to ?? Console.Error).WriteLine($"engine: warning: {warning}");

    /// <summary>
    /// Creates <paramref name="path"/> if needed and checks a file can be written in it, so an unwritable output fails
    /// before any work with one error naming <paramref name="flag"/> (the probe file is deleted on close).
    /// </summary>
    public static void WritableDirectory(string path, string flag)
    {
        try
        {
            Directory.CreateDirectory(path);
            using var probe = new FileStream(
                Path.Combine(path, $".engine-write-test-{Environment.ProcessId}"), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            string why = e is UnauthorizedAccessException ? "permission denied" : e.Message;
            throw new CommandException($"{flag}: cannot write to directory '{path}': {why}", e);
        }
    }

    private static readonly string[] EosCandidates = ["<|endoftext|>", "</s>", "<|end_of_text|>", "<|im_end|>", "<eos>"];

    /// <summary>--tokenizer, else tokenizer.json in <paramref name="directory"/>; it must exist.</summary>
    public static string TokenizerPath(string? tokenizer, string? directory)
    {
        string path = tokenizer
            ?? (directory is null
                ? throw new CommandException("--tokenizer is required when there is no --model directory")
                : Path.Combine(directory, "tokenizer.json"));
        return File.Exists(path) ? path : throw new CommandException($"--tokenizer: file '{path}' does not exist");
    }

    public static Tokenizer LoadTokenizer(string path)
    {
        try
        {
            return Tokenizer.FromFile(path);
        }
        catch (TokenizerFormatException e)
        {
            throw new CommandException(e.Message, e);
        }
    }

    /// <summary>The end-of-sequence token: config.json's eos_token_id, else a conventional special token of the tokenizer.</summary>
    public static int? EosTokenId(HfModelConfig? config, Tokenizer tokenizer) => config?.EosTokenIds is { Count: > 0 } eos
        ? eos[0]
        : EosCandidates.Select(tokenizer.TokenToId).FirstOrDefault(id => id is not null);

    /// <summary>The tokenizer without added special tokens; BOS is the token its post-processor puts first, if any.</summary>
    public static ITextEncoder Encoder(Tokenizer tokenizer, int? eos) => FuncTextEncoder.ForTokenizer(tokenizer, eos);

    /// <summary>
    /// The chat template named by --chat-template, else the one in the tokenizer's directory (a checkpoint trained with a
    /// template carries it there), else none. A name that disagrees with the directory's own template wins, with a
    /// warning on <paramref name="warnings"/> (stderr by default) naming both.
    /// </summary>
    public static ChatTemplate? Template(string? name, string tokenizerPath, TextWriter? warnings = null)
    {
        var own = DirectoryTemplate(tokenizerPath);
        if (string.IsNullOrWhiteSpace(name))
        {
            return own;
        }

        var chosen = ChatTemplate.FromName(name);
        if (own is not null && own.Family != chosen.Family)
        {
            Warn(
                $"--chat-template {chosen.Name} differs from the template in {Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))} ({own.Name}); using {chosen.Name}",
                warnings);
        }

        return chosen;
    }

    /// <summary>The chat template the tokenizer's directory carries (chat_template.jinja or tokenizer_config.json), if recognised.</summary>
    public static ChatTemplate? DirectoryTemplate(string tokenizerPath)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(tokenizerPath));
        return dir is null ? null : ChatTemplate.FromTokenizerDirectory(dir);
    }

    /// <summary>
    /// Reads a dataset whole (so a bad line or row stops the command before any work starts): a JSONL file, a Parquet
    /// file, or a directory of Parquet shards.
    /// </summary>
    public static List<Example> ReadExamples(string path, string flag, bool skipBadLines)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new CommandException($"{flag}: file '{path}' does not exist");
        }

        var options = new DatasetOptions
        {
            SkipBadLines = skipBadLines,
            OnSkippedLine = e => Warn($"skipped {e.Message}"),
        };
        var examples = InputFiles.Guard(path, $"the {flag} file", () => DatasetFiles.ReadAll(path, options).ToList());
        return examples.Count > 0 ? examples : throw new CommandException($"{flag}: '{path}' holds no examples");
    }
}
