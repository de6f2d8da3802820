using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Engine.Cli;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Tests.Cli;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// The <c>engine</c> command's one error boundary: every expected failure (an <see cref="InputException"/>) is one line
/// <c>engine: error: …</c> naming the file or flag and the field, exit code 1, no stack trace; a bug is
/// <c>engine: internal error: …</c> with its stack trace and exit code 70; <c>--verbose</c> adds the trace to the first kind.
/// </summary>
[Collection("Console")]
public sealed class ErrorBoundaryTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-errors-").FullName;

    public ErrorBoundaryTests() => CliHarness.SaveTinyModel(Model);

    private string Model => Path.Combine(dir, "model");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void A_bug_prints_its_type_and_stack_trace_and_exits_70()
    {
        var root = new RootCommand("test");
        var boom = new Command("boom");
        boom.SetAction(_ => ThrowBug());
        root.Add(boom);
        root.Add(EngineCommand.Verbose);
        var (code, error) = Capture(() => EngineCommand.Run(["boom"], root));
        Assert.Equal(EngineCommand.InternalErrorExitCode, code);
        Assert.StartsWith("engine: internal error: System.InvalidOperationException: injected bug", error, StringComparison.Ordinal);
        Assert.Contains($"at {typeof(ErrorBoundaryTests).FullName}.{nameof(ThrowBug)}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Verbose_prints_the_stack_trace_of_an_expected_failure()
    {
        WriteConfig(c => c["model_type"] = "bert");
        var (code, _, error) = CliHarness.Run(["info", Model]);
        AssertOneLine(code, error, "config.json: field 'model_type': 'bert' is not supported (gpt2, llama, qwen2, mistral are)");

        (code, _, error) = CliHarness.Run(["info", Model, "--verbose"]);
        Assert.Equal(1, code);
        string[] lines = error.TrimEnd().Split('\n');
        Assert.StartsWith("engine: error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.TrimStart().StartsWith("at Engine.Models.HuggingFace.HfConfig.", StringComparison.Ordinal));
    }

    [Fact]
    public void A_config_larger_than_its_weights_fails_before_allocating_them()
    {
        // 16 M tokens × 16 channels is a 1 GB embedding: the header says 257 rows, so nothing of it may be allocated.
        WriteConfig(c => c["vocab_size"] = 16_000_000);
        long peak = HostBuffer.PeakBytes, managed = GC.GetTotalAllocatedBytes(precise: true);
        var (code, _, error) = CliHarness.Run(["generate", Model, "--prompt", "hi", "--threads", "1"]);
        long managedDelta = GC.GetTotalAllocatedBytes(precise: true) - managed;
        AssertOneLine(code, error, "config.json: field 'vocab_size': 16000000 does not fit the weights", "has shape [257, 16]", "(the weights have 257)");
        Assert.True(HostBuffer.PeakBytes - peak < 256L << 20, $"host buffers peaked {HostBuffer.PeakBytes - peak:N0} bytes higher");
        Assert.True(managedDelta < 256L << 20, $"{managedDelta:N0} managed bytes allocated");
    }

    [Fact]
    public void More_layers_than_the_weights_hold_names_the_layer_field()
    {
        WriteConfig(c => c["n_layer"] = 100);
        var (code, _, error) = CliHarness.Run(["generate", Model, "--prompt", "hi", "--threads", "1"]);
        AssertOneLine(code, error, "config.json: field 'n_layer': 100 layers do not fit the weights (1 found in");

        WriteConfig(c => c["n_layer"] = 1_000_000_000);
        (code, _, error) = CliHarness.Run(["info", Model]);
        AssertOneLine(code, error, "config.json: field 'n_layer': must be in [1, 1024], got 1000000000");
    }

    [Theory]
    [InlineData("n_head", "-3", "field 'n_head': must be in [1, 1024], got -3")]
    [InlineData("n_positions", "-48", "field 'n_positions': must be in [1, 4194304], got -48")]
    [InlineData("eos_token_id", "257", "field 'eos_token_id': token id 257 is outside the vocabulary [0, 257)")]
    [InlineData("layer_norm_epsilon", "1e300", "field 'layer_norm_epsilon': must be a positive number finite in fp32")]
    [InlineData("model_type", "\"bert\"", "field 'model_type': 'bert' is not supported")]
    public void Info_names_config_json_and_the_field(string field, string value, string message)
    {
        WriteConfig(c => c[field] = JsonNode.Parse(value));
        var (code, _, error) = CliHarness.Run(["info", Model]);
        AssertOneLine(code, error, "config.json: " + message);
    }

    [Fact]
    public void A_shard_index_cannot_reach_outside_the_checkpoint_or_read_a_fifo()
    {
        string shard = Path.Combine(Model, "model-00001-of-00001.safetensors");
        File.Move(Path.Combine(Model, HfCheckpoint.WeightsFile), shard);
        string outside = Path.Combine(dir, "outside.safetensors");
        File.Copy(shard, outside);
        File.CreateSymbolicLink(Path.Combine(Model, "link.safetensors"), outside);
        string[] tensors;
        using (var file = SafetensorsFile.Open(shard))
        {
            tensors = [.. file.Names];
        }

        WriteIndex(tensors, "link.safetensors");
        var (code, _, error) = CliHarness.Run(["generate", Model, "--prompt", "hi", "--threads", "1"]);
        AssertOneLine(code, error, "model.safetensors.index.json: field 'weight_map['", "'link.safetensors' points outside");

        using (var mkfifo = Process.Start("mkfifo", Path.Combine(Model, "fifo.safetensors")))
        {
            mkfifo.WaitForExit();
        }

        WriteIndex(tensors, "fifo.safetensors");
        (code, _, error) = CliHarness.Run(["generate", Model, "--prompt", "hi", "--threads", "1"]);
        AssertOneLine(code, error, "fifo.safetensors", "is not a regular file (a FIFO)");
    }

    [Fact]
    public void A_damaged_reward_head_file_is_one_line()
    {
        var config = HfConfig.ReadFile(Path.Combine(Model, "config.json")).Model with { Head = HeadKind.Scalar };
        using (var backend = new CpuBackend(1))
        using (var model = new Transformer(config, backend))
        {
            model.InitializeWeights(3);
            HfCheckpoint.Save(model, Model);
        }

        string data = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllText(data, """{"prompt": "q ", "chosen": "good", "rejected": "bad"}""" + "\n");
        string head = Path.Combine(Model, RewardHeadFile.FileName);
        File.WriteAllText(head, $$"""{"format": "{{RewardHeadFile.Format}}", "bias": 1e400}""");
        var (code, _, error) = CliHarness.Run(["score", Model, "--data", data, "--threads", "1"]);
        AssertOneLine(code, error, "reward_head.json: field 'bias': must be a finite number, got 1e400");

        File.WriteAllText(head, $$"""{"format": "{{RewardHeadFile.Format}}", "bias": """);
        (code, _, error) = CliHarness.Run(["score", Model, "--data", data, "--threads", "1"]);
        AssertOneLine(code, error, "reward_head.json:1: ", "is not valid JSON");
    }

    [Fact]
    public void A_foreign_file_as_the_reference_log_prob_cache_is_refused()
    {
        string output = Path.Combine(dir, "dpo");
        Directory.CreateDirectory(output);
        var writer = new SafetensorsWriter();
        writer.AddF32("x", [1f], 1);
        writer.Save(Path.Combine(output, "reference_logprobs.safetensors"));
        string data = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "q{{i}} ", "chosen": "good {{i}}", "rejected": "bad"}"""));
        var (code, _, error) = CliHarness.Run(
            ["dpo", "--model", Model, "--data", data, "--out", output, "--precompute-ref", "--set", "max_steps=1", "--set", "batch_size=2", "--set", "max_length=32", "--threads", "1"]);
        AssertOneLine(code, error, "reference_logprobs.safetensors: field '__metadata__.format': not a reference log-prob cache");
    }

    [Fact]
    public void An_unwritable_out_or_unreadable_data_names_the_flag()
    {
        string data = Path.Combine(dir, "sft.jsonl");
        File.WriteAllText(data, """{"prompt": "q ", "completion": "a"}""" + "\n");
        string notADirectory = Path.Combine(dir, "file");
        File.WriteAllText(notADirectory, "");
        var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", data, "--out", Path.Combine(notADirectory, "out"), "--threads", "1"]);
        AssertOneLine(code, error, "--out: cannot write to directory", notADirectory);

        // /proc/self/mem is a regular file whose first page cannot be read (EIO), like a file on a failing disk.
        (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", "/proc/self/mem", "--out", Path.Combine(dir, "out"), "--threads", "1"]);
        AssertOneLine(code, error, "/proc/self/mem: cannot read the --data file");
    }

    [Fact]
    public void A_learning_rate_infinite_in_fp32_is_refused_before_training()
    {
        string data = Path.Combine(dir, "sft.jsonl");
        File.WriteAllText(data, """{"prompt": "q ", "completion": "a"}""" + "\n");
        var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", data, "--out", Path.Combine(dir, "out"), "--set", "learning_rate=1e300", "--threads", "1"]);
        AssertOneLine(code, error, "learning_rate must be positive and finite in fp32, got 1E+300");
    }

    private static int ThrowBug() => throw new InvalidOperationException("injected bug");

    private static (int Code, string Error) Capture(Func<int> run)
    {
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            return (run(), error.ToString());
        }
        finally
        {
            Console.SetError(saved);
        }
    }

    [Fact]
    public void Chat_template_faults_are_one_line_naming_the_flag_or_the_field()
    {
        File.WriteAllText(Path.Combine(dir, "sft.jsonl"), "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
        string[] sft = ["sft", "--model", Model, "--data", Path.Combine(dir, "sft.jsonl"), "--out", Path.Combine(dir, "out"), "--set", "max_length=16"];
        var (code, _, error) = CliHarness.Run([.. sft, "--chat-template", "vicuna"]);
        AssertOneLine(code, error, "unknown chat template 'vicuna'", "--chat-template");

        string config = Path.Combine(Model, "tokenizer_config.json");
        File.WriteAllText(config, "{\"chat_template\": 5}");
        (code, _, error) = CliHarness.Run(sft);
        AssertOneLine(code, error, "tokenizer_config.json: field 'chat_template': must be a string");

        File.WriteAllText(config, "{bad");
        (code, _, error) = CliHarness.Run(sft);
        AssertOneLine(code, error, "tokenizer_config.json:1: not valid JSON");
    }

    [Fact]
    public void A_max_length_beyond_the_context_and_an_unscorable_line_are_one_line()
    {
        string data = Path.Combine(dir, "text.jsonl");
        File.WriteAllText(data, "{\"text\": \"hello there\"}\n");
        var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", data, "--out", Path.Combine(dir, "o1"), "--set", "max_length=64"]);
        AssertOneLine(code, error, "field 'max_length': 64 exceeds the model's maximum sequence length of 32", "--set max_length=32");
        (code, _, error) = CliHarness.Run(["dpo", "--model", Model, "--data", data, "--out", Path.Combine(dir, "o2"), "--set", "max_seq_length=1024"]);
        AssertOneLine(code, error, "field 'max_length': 1024 exceeds");

        File.WriteAllText(data, "{\"text\": \"h\"}\n");
        (code, _, error) = CliHarness.Run(["logprobs", Model, "--data", data]);
        AssertOneLine(code, error, "text.jsonl:1: no response tokens to score");
    }

    private static void AssertOneLine(int code, string error, params string[] mentions)
    {
        Assert.True(code == 1, $"exit code {code}: {error}");
        string[] lines = error.TrimEnd('\n').Split('\n');
        Assert.True(lines.Length == 1, $"expected one line, got:\n{error}");
        Assert.StartsWith("engine: error: ", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        foreach (string mention in mentions)
        {
            Assert.Contains(mention, lines[0], StringComparison.Ordinal);
        }
    }

    private void WriteConfig(Action<JsonObject> change)
    {
        string path = Path.Combine(Model, "config.json");
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        change(node);
        File.WriteAllText(path, node.ToJsonString().Replace("1E+300", "1e300", StringComparison.Ordinal));
    }

    private void WriteIndex(string[] tensors, string shard)
    {
        var map = new JsonObject();
        foreach (string t in tensors)
        {
            map[t] = shard;
        }

        File.WriteAllText(Path.Combine(Model, HfCheckpoint.IndexFile), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
    }
}
