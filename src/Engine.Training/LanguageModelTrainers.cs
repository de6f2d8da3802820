using Engine.Core;
using Engine.Models;
using Engine.Models.Chat;
using Engine.Models.HuggingFace;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Options;

namespace Engine.Training;

/// <summary>Pretraining and SFT: the shared <see cref="Trainer{TBatch}"/> with the next-token objective and their data layouts.</summary>
public static class LanguageModelTrainers
{
    /// <summary>
    /// Pretraining on <c>text</c> examples: documents joined by EOS and cut into rows of <see cref="TrainerOptions.MaxLength"/>
    /// positions (see <see cref="PretrainBatches"/>), every token trained.
    /// <paramref name="checkpointFormat"/> becomes <see cref="Trainer{TBatch}.CheckpointFormat"/>.
    /// </summary>
    public static Trainer<SequenceBatch> Pretrain(
        Transformer model, ITextEncoder encoder, IEnumerable<Example> train, IEnumerable<Example>? validation, PretrainOptions options,
        HfSaveOptions? checkpointFormat = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckLength(model, options.MaxLength);
        var trainBatches = new PretrainBatches(encoder, train, options.MaxLength, options.BatchSize);
        var validationBatches = validation is null ? null : new PretrainBatches(encoder, validation, options.MaxLength, options.BatchSize);
        return new Trainer<SequenceBatch>(model, new LanguageModelObjective(model), trainBatches, validationBatches, options) { CheckpointFormat = checkpointFormat };
    }

    /// <summary>
    /// Supervised fine-tuning on text, prompt/completion, Alpaca or messages examples: the loss covers completions and
    /// every assistant turn (prompts and user turns masked), one example per row or packed (<see cref="SftOptions.Packing"/>).
    /// <paramref name="template"/> renders conversations; <paramref name="padTokenId"/> fills padding (never trained);
    /// <paramref name="checkpointFormat"/> becomes <see cref="Trainer{TBatch}.CheckpointFormat"/>.
    /// </summary>
    public static Trainer<SequenceBatch> Sft(
        Transformer model, ITextEncoder encoder, IEnumerable<Example> train, IEnumerable<Example>? validation, SftOptions options,
        ChatTemplate? template = null, int padTokenId = 0, HfSaveOptions? checkpointFormat = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckLength(model, options.MaxLength);
        var collator = new SequenceCollator(encoder, options.CollatorOptions(padTokenId), template);
        var trainBatches = new SftBatches(collator, train, options.BatchSize);
        var validationBatches = validation is null ? null : new SftBatches(collator, validation, options.BatchSize);
        return new Trainer<SequenceBatch>(model, new LanguageModelObjective(model), trainBatches, validationBatches, options) { CheckpointFormat = checkpointFormat };
    }

    /// <summary>Refuses a <c>max_length</c> longer than <paramref name="model"/>'s context, naming the key (an <see cref="InputException"/>).</summary>
    public static void CheckLength(Transformer model, int maxLength)
    {
        if (maxLength > model.Config.MaxSequenceLength)
        {
            throw new InputException("options", null, "max_length", $"{maxLength} exceeds the model's maximum sequence length of {model.Config.MaxSequenceLength} (config.json); set max_length to at most that (--set max_length={model.Config.MaxSequenceLength})");
        }
    }
}
