using Engine.Tests.Cli;
using Engine.Tests.Training;

namespace Engine.Tests.Objectives.Preference;

/// <summary>
/// The inputs of the preference command tests in <paramref name="dir"/>: <see cref="CliHarness.SaveTinyModel"/>'s model,
/// four preference pairs and four unpaired (KTO) examples, half of them desirable.
/// </summary>
internal sealed class PreferenceFiles(TempDirectory dir)
{
    /// <summary>The tiny GPT-2 checkpoint.</summary>
    public string Model => dir.Sub("model");

    /// <summary>prompt/chosen/rejected lines.</summary>
    public string Pairs => dir.Sub("pairs.jsonl");

    /// <summary>prompt/completion/label lines.</summary>
    public string Unpaired => dir.Sub("kto.jsonl");

    /// <summary>Writes the model and both data files.</summary>
    public PreferenceFiles Write()
    {
        CliHarness.SaveTinyModel(Model);
        File.WriteAllLines(Pairs, Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "q{{i}} ", "chosen": "good {{i}}", "rejected": "bad"}"""));
        File.WriteAllLines(Unpaired, Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "{{(i % 2 == 0 ? "good" : "bad")}} {{i}}", "label": {{(i % 2 == 0 ? "true" : "false")}}}"""));
        return this;
    }
}
