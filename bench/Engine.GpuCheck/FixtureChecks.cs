using Engine.Core.Backends;
using Engine.Tests.Lora;
using Engine.Tests.Models;
using Engine.Tests.Objectives;
using Engine.Tests.Objectives.Preference;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

/// <summary>
/// The PyTorch fixture checks of the test suite on the device: the very test bodies the <c>CudaConformance</c> and
/// emulated-device tests run (GPT-2 and Llama logits, loss, every gradient and ten AdamW steps; DPO and reward-model
/// steps; every paired preference loss and KTO; PEFT LoRA), compiled into this runner with the fixtures beside it, so
/// they run where no .NET SDK is installed. A case passes when its body returns, fails when an assertion throws.
/// </summary>
internal static class FixtureChecks
{
    /// <summary>The cases: label and the body to run against the device backend.</summary>
    public static IEnumerable<(string Label, Action<Backend, ITestOutputHelper> Run)> Cases()
    {
        foreach (string name in ModelFixture.Names)
        {
            yield return ($"pytorch {name} logits+grads", (b, o) => PyTorchParityTests.LogitsLossAndGradients(name, b, o));
            yield return ($"pytorch {name} 10 AdamW steps", (b, o) => PyTorchParityTests.TenAdamWSteps(name, b, o));
        }

        foreach (string name in Names(ObjectiveParityTests.DpoCases))
        {
            yield return ($"pytorch dpo {name}", (b, o) => ObjectiveParityTests.Dpo(name, b, o));
        }

        foreach (string name in Names(ObjectiveParityTests.RewardCases))
        {
            yield return ($"pytorch reward model {name}", (b, o) => ObjectiveParityTests.RewardModel(name, b, o));
        }

        foreach (string name in Names(PreferenceParityTests.PairedCases))
        {
            yield return ($"pytorch preference {name}", (b, o) => PreferenceParityTests.Paired(name, b, o));
        }

        yield return ("pytorch kto", PreferenceParityTests.Kto);
        foreach (string name in Names(LoraParityTests.Fixtures))
        {
            yield return ($"peft {name} logits+grads", (b, o) => LoraParityTests.LogitsLossAndGradients(name, b, o));
            yield return ($"peft {name} 10 AdamW steps", (b, o) => LoraParityTests.TenAdamWSteps(name, b, o));
        }
    }

    private static IEnumerable<string> Names(TheoryData<string> data) => ((IEnumerable<object[]>)data).Select(row => (string)row[0]);

    /// <summary>Collects a test body's log lines, printed only when the case fails.</summary>
    internal sealed class Log : ITestOutputHelper
    {
        public List<string> Lines { get; } = [];

        public void WriteLine(string message) => Lines.Add(message);

        public void WriteLine(string format, params object[] args) => Lines.Add(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args));
    }
}
