using System.Text.Json;
using Engine.Tests.Chat.Jinja;
using Engine.Tests.Cli;
using Xunit;

namespace Engine.Tests.Training;

/// <summary><c>engine sft</c> on TRL tool-calling rows: trains with the model's own tool-aware template, refuses a built-in one.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class ToolCallSftCliTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_trains_on_tool_calling_rows_with_the_model_s_template()
    {
        string model = dir.Sub("model");
        CliHarness.SaveTinyModel(model, maxLength: 128);
        var qwen = JinjaToolRowTests.Template("qwen2.5-0.5b-instruct");
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = qwen.Jinja, eos_token = "<|im_end|>" }));
        string rows = dir.Sub("tools.jsonl");
        File.WriteAllLines(rows, Enumerable.Range(0, 3).Select(i =>
            $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"{i}?\"}}, {{\"role\": \"assistant\", \"tool_calls\": [{{\"type\": \"function\", \"function\": {{\"name\": \"add\", \"arguments\": {{\"a\": {i}}}}}}}]}}, "
            + $"{{\"role\": \"tool\", \"name\": \"add\", \"content\": \"{i + 1}\"}}, {{\"role\": \"assistant\", \"content\": \"{i + 1}\"}}]"
            + (i == 0 ? ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\"}}]" : "") + "}"));

        var (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", rows, "--out", dir.Sub("sft"), "--set", "max_length=128", "--threads", "2"]);
        Assert.True(code == 0, error);

        (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", rows, "--out", dir.Sub("sft2"), "--chat-template", "chatml", "--set", "max_length=128", "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("which the built-in chatml format cannot show: use a --model or --tokenizer directory", error, StringComparison.Ordinal);
    }
}
