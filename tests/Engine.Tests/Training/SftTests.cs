using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models.Chat;
using Engine.Tests.Support;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Options;
using Xunit;
using static Engine.Tests.Training.TrainingHarness;

namespace Engine.Tests.Training;

public class SftTests
{
    [Fact]
    public void Sft_lowers_the_validation_loss_on_completions_and_evaluates_every_epoch()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        using var model = Model(backend);
        var options = new SftOptions
        {
            Epochs = 5, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 3, LogInterval = 5, CheckpointInterval = 0,
            MaxLength = 32, OutputDirectory = dir.Path, Optimizer = new() { WeightDecay = 0f },
        };
        var trainer = LanguageModelTrainers.Sft(model, Encoder, Instructions(48, 1), Instructions(16, 2), options);
        double before = trainer.Evaluate()["eval_loss"];
        var result = trainer.Run();

        Assert.Equal(30, result.Steps);
        Assert.NotNull(result.EvalLoss);
        Assert.True(result.EvalLoss < 0.6 * before, $"validation loss {before:F3} → {result.EvalLoss:F3}");
        var evals = File.ReadAllLines(Path.Combine(dir.Path, Trainer<SequenceBatch>.MetricsFile))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("eval_loss", out _))
            .ToList();
        Assert.Equal([1.0, 2.0, 3.0, 4.0, 5.0], evals.Select(e => Math.Round(e.GetProperty("epoch").GetDouble(), 6)));
        Assert.True(evals[^1].GetProperty("eval_loss").GetDouble() < evals[0].GetProperty("eval_loss").GetDouble());
    }

    [Fact]
    public void Prompt_positions_carry_no_target_and_cannot_change_the_loss()
    {
        using var backend = new CpuBackend(2);
        using var model = Model(backend);
        var collator = new SequenceCollator(Encoder, new SftOptions { MaxLength = 32 }.CollatorOptions());
        var batch = collator.Collate([.. Instructions(4, 5).Select(collator.Tokenize)]);
        var sequences = Instructions(4, 5).Select(collator.Tokenize).ToList();
        for (int b = 0; b < batch.Batch; b++)
        {
            for (int t = 0; t + 1 < sequences[b].PromptLength; t++)
            {
                Assert.Equal(CollatorOptions.IgnoreIndex, batch.Targets[(b * batch.Time) + t]);
            }
        }

        var objective = new LanguageModelObjective(model);
        model.ZeroGradients();
        double loss = objective.Step(batch, 1f).Loss;
        var gradient = Read(backend, model.Parameters.Gradients);

        // The same batch with the prompt positions' targets set to what the prompt actually continues with: were they
        // not masked, this is what they would be trained on. Only an explicit unmasking changes the loss.
        var unmasked = batch with { Targets = (int[])batch.Targets.Clone() };
        for (int b = 0; b < batch.Batch; b++)
        {
            for (int t = 0; t + 1 < sequences[b].PromptLength; t++)
            {
                unmasked.Targets[(b * batch.Time) + t] = sequences[b].Ids[t + 1];
            }
        }

        model.ZeroGradients();
        Assert.NotEqual(loss, objective.Step(unmasked, 1f).Loss);

        // The loss is the mean over completion tokens only, as the logits give it.
        var logits = new float[batch.Batch * batch.Time * Vocab];
        model.ForwardLogits(batch.Tokens, batch.Batch, batch.Time, logits);
        double sum = 0;
        int counted = 0;
        for (int n = 0; n < batch.Targets.Length; n++)
        {
            if (batch.Targets[n] < 0)
            {
                continue;
            }

            var row = logits.AsSpan(n * Vocab, Vocab);
            float max = float.NegativeInfinity;
            foreach (float z in row)
            {
                max = Math.Max(max, z);
            }

            double lse = 0;
            foreach (float z in row)
            {
                lse += Math.Exp(z - max);
            }

            sum += Math.Log(lse) + max - row[batch.Targets[n]];
            counted++;
        }

        Assert.Equal(sum / counted, loss, 4);
        Assert.Equal(loss, objective.Evaluate(batch).Loss, 4);

        // And the masked step is repeatable bit for bit, so the inequality above is the mask's doing alone.
        model.ZeroGradients();
        objective.Step(batch with { Targets = (int[])batch.Targets.Clone() }, 1f);
        Approx.BitEqual(gradient, Read(backend, model.Parameters.Gradients), "gradient");
    }

    [Fact]
    public void Packed_sft_with_gradient_checkpointing_from_options_trains_to_the_same_bits()
    {
        using var backend = new CpuBackend(2);
        var runs = new List<float[]>();
        foreach (bool recompute in new[] { false, true })
        {
            using var dir = new TempDirectory();
            using var model = Model(backend);
            var options = OptionsReader.Apply(
                new SftOptions { MaxSteps = 3, BatchSize = 2, MaxLength = 32, Dropout = 0.1f, CheckpointInterval = 0, OutputDirectory = dir.Path },
                ["packing=true", "packing_strategy=bfd", $"gradient_checkpointing={(recompute ? "true" : "false")}"]);
            Assert.Equal((true, PackingStrategy.Bfd, recompute), (options.Packing, options.PackingStrategy, options.GradientCheckpointing));
            LanguageModelTrainers.Sft(model, Encoder, Instructions(12, 3), null, options).Run();
            Assert.Equal(recompute, model.GradientCheckpointing);
            runs.Add(TestData.Download(backend, model.Parameters.Values));
        }

        Approx.BitEqual(runs[0], runs[1], "parameters after 3 packed steps");
        Assert.Equal(PackingStrategy.Sequential, OptionsReader.Apply(new SftOptions(), ["packing_strategy=sequential"]).PackingStrategy);
    }

    [Fact]
    public void Multi_turn_chats_train_every_assistant_turn_and_packing_fills_rows()
    {
        var template = ChatTemplate.ChatMl;
        var chat = new MessagesExample([
            new ChatMessage(ChatMessage.User, "hi"), new ChatMessage(ChatMessage.Assistant, "yo"),
            new ChatMessage(ChatMessage.User, "and?"), new ChatMessage(ChatMessage.Assistant, "ok")]);
        var sequence = new SequenceCollator(Encoder, new SftOptions { MaxLength = 256 }.CollatorOptions(), template).Tokenize(chat);
        int spans = 0;
        for (int t = 1; t < sequence.Length; t++)
        {
            spans += sequence.Trained[t] && !sequence.Trained[t - 1] ? 1 : 0;
        }

        Assert.Equal(2, spans);
        var collator = new SequenceCollator(Encoder, new SftOptions { MaxLength = 32, Packing = true }.CollatorOptions());
        var source = new SftBatches(collator, Instructions(10, 4), 2);
        var batches = source.Batches(shuffleSeed: 11);
        Assert.All(batches, b => Assert.Equal(32, b.Time));
        Assert.Equal(source.Batches(11).Select(b => b.Tokens), batches.Select(b => b.Tokens));
        Assert.NotEqual(source.Batches(12)[0].Tokens, batches[0].Tokens);
    }
}
