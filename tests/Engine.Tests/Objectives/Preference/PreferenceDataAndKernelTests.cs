using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Cuda;
using Engine.Tests.Cuda;
using Engine.Tests.Training;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Objectives.Preference;

/// <summary>TRL's unpaired format (prompt/completion/label) and the preference loss kernel's input checks on both backends.</summary>
public sealed class PreferenceDataAndKernelTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Prompt_completion_label_lines_are_unpaired_examples_and_a_label_elsewhere_stays_a_column()
    {
        string path = dir.Sub("kto.jsonl");
        File.WriteAllLines(path, ["""{"prompt": "q", "completion": " yes", "label": true}""", """{"prompt": "q", "completion": " no", "label": false}"""]);
        var examples = JsonlReader.ReadAll(path).ToList();
        Assert.Equal([true, false], examples.Cast<UnpairedPreferenceExample>().Select(e => e.Label));
        Assert.Equal(" yes", ((UnpairedPreferenceExample)examples[0]).Completion.Text);
        Assert.Equal("prompt/completion/label", ExampleFormats.Fields(examples[0]));

        // A label in another format is the row's own column (e.g. for reward functions), not a field.
        string prompts = dir.Sub("prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "q", "label": "x"}"""]);
        var prompt = JsonlReader.ReadAll(prompts).Single();
        Assert.IsType<PromptExample>(prompt);
        Assert.True(prompt.Columns!.ContainsKey("label"));
    }

    [Fact]
    public void A_label_that_is_not_a_boolean_names_the_line_and_field()
    {
        string path = dir.Sub("bad.jsonl");
        File.WriteAllLines(path, ["""{"prompt": "q", "completion": " yes", "label": true}""", """{"prompt": "q", "completion": " no", "label": "bad"}"""]);
        var e = Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path).ToList());
        Assert.Contains("bad.jsonl:2", e.Message, StringComparison.Ordinal);
        Assert.Contains("'label'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_pair_indices_throw_and_leave_the_gradient_on_the_cpu()
    {
        using var cpu = new CpuBackend(2);
        CheckIndices(cpu);
    }

    [EmulatorFact]
    [Trait("Category", "CudaEmulated")]
    public void Bad_pair_indices_throw_and_leave_the_gradient_on_the_emulated_device()
    {
        using var cuda = CudaBackend.CreateEmulated();
        CheckIndices(cuda);
    }

    // A pair past the responses, and a KTO pair with both sides, are refused before anything is added.
    private static void CheckIndices(Backend b)
    {
        var policy = Upload(b, [-3f, -4f, -5f]);
        var lengths = Upload(b, [2f, 3f, 4f]);
        var grad = Upload(b, [0.5f, 0.25f, 0.125f]);
        foreach (var (c, l, type) in new[] { (new[] { 0, 1 }, new[] { 1, 3 }, PreferenceLossType.Simpo), (new[] { 0, 1 }, new[] { -1, 2 }, PreferenceLossType.Kto) })
        {
            var chosen = b.AllocateTensor(DType.I32, c.Length);
            var rejected = b.AllocateTensor(DType.I32, l.Length);
            b.CopyFromHost<int>(chosen, c);
            b.CopyFromHost<int>(rejected, l);
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                b.PreferenceLoss(policy, default, lengths, chosen, rejected, default, grad, new PreferenceLossOptions(type, 1f)));
            var after = new float[3];
            b.CopyToHost<float>(grad, after);
            Assert.Equal([0.5f, 0.25f, 0.125f], after);
        }
    }

    private static Tensor Upload(Backend b, float[] values)
    {
        var t = b.AllocateTensor(DType.F32, values.Length);
        b.CopyFromHost<float>(t, values);
        return t;
    }
}
