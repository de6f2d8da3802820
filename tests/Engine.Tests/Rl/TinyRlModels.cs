using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;

namespace Engine.Tests.Rl;

/// <summary>The checkpoints the RL command tests run on: a tiny GPT-2 policy and a reward model of the same trunk, both with a byte-level tokenizer (EOS 256).</summary>
internal static class TinyRlModels
{
    /// <summary>Writes a random policy (seed 7) to <paramref name="policyDirectory"/>, a random reward model (seed 8) to <paramref name="rewardDirectory"/>, and six prompts.</summary>
    public static void Write(string policyDirectory, string rewardDirectory, string promptsPath, Func<int, string> prompt)
    {
        var config = TransformerConfig.Gpt2(257, 32, layers: 1, channels: 16, heads: 2);
        using var backend = new CpuBackend(1);
        foreach (var (path, head, seed) in new[] { (policyDirectory, HeadKind.LanguageModel, 7UL), (rewardDirectory, HeadKind.Scalar, 8UL) })
        {
            using var model = new Transformer(config with { Head = head }, backend);
            model.InitializeWeights(seed);
            HfCheckpoint.Save(model, path, new HfSaveOptions { Config = HfModelConfig.For(model.Config) with { EosTokenIds = [256] } });
            BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(path, "tokenizer.json"));
        }

        File.WriteAllLines(promptsPath, Enumerable.Range(0, 6).Select(i => $$"""{"prompt": "{{prompt(i)}}"}"""));
    }
}
