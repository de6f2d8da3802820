using Engine.Models.Chat;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Training;

public sealed class SequenceCollatorTests
{
    // A byte-level stand-in tokenizer: one token per UTF-8 byte; BOS 256, EOS 257 (outside the byte range).
    private const int Bos = 256, Eos = 257;

    private static readonly ITextEncoder Bytes = new FuncTextEncoder(s => System.Text.Encoding.UTF8.GetBytes(s).Select(b => (int)b).ToArray(), eosTokenId: Eos);

    private static readonly ITextEncoder BytesWithBos = new FuncTextEncoder(Bytes.Encode, Bos, Eos);

    private static string Decode(IEnumerable<int> ids) =>
        string.Concat(ids.Select(id => id switch { Bos => "<s>", Eos => "</s>", _ => ((char)id).ToString() }));

    private static string TrainedText(TokenizedSequence s) => Decode(s.Ids.Where((_, i) => s.Trained[i]));

    [Fact]
    public void Text_is_trained_everywhere_and_ends_with_eos()
    {
        var s = new SequenceCollator(Bytes).Tokenize(new TextExample("abc"));
        Assert.Equal("abc</s>", Decode(s.Ids));
        Assert.Equal("abc</s>", TrainedText(s));
        var batch = new SequenceCollator(Bytes).Collate([s]);
        Assert.Equal(['b', 'c', Eos, -100], batch.Targets);
        Assert.Equal([1f, 1f, 1f, 0f], batch.LossMask);
    }

    [Fact]
    public void Prompt_completion_trains_only_the_completion_and_eos()
    {
        var collator = new SequenceCollator(BytesWithBos);
        var s = collator.Tokenize(new PromptCompletionExample(TextOrChat.FromText("Q:"), TextOrChat.FromText(" 4")));
        Assert.Equal("<s>Q: 4</s>", Decode(s.Ids));
        Assert.Equal(" 4</s>", TrainedText(s));
        Assert.Equal(3, s.PromptLength);

        var all = new SequenceCollator(BytesWithBos, new CollatorOptions { CompletionOnlyLoss = false }).Tokenize(new PromptCompletionExample(TextOrChat.FromText("Q:"), TextOrChat.FromText(" 4")));
        Assert.Equal("Q: 4</s>", TrainedText(all)); // BOS is never a target: nothing precedes it
    }

    [Fact]
    public void Alpaca_trains_the_output()
    {
        var s = new SequenceCollator(Bytes).Tokenize(new AlpacaExample("Add", "2, 2", "4"));
        Assert.Equal("### Instruction:\nAdd\n\n### Input:\n2, 2\n\n### Response:\n4</s>", Decode(s.Ids));
        Assert.Equal("4</s>", TrainedText(s));
    }

    [Fact]
    public void Multi_turn_chat_trains_every_assistant_turn_and_nothing_else()
    {
        var collator = new SequenceCollator(Bytes, template: ChatTemplate.ChatMl);
        var s = collator.Tokenize(new MessagesExample([new("user", "a"), new("assistant", "B"), new("user", "c"), new("assistant", "D")]));
        Assert.Equal("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\nD<|im_end|>\n", Decode(s.Ids));
        Assert.Equal("B<|im_end|>D<|im_end|>", TrainedText(s));

        // Conversational prompt/completion: an assistant turn inside the prompt is context, not trained.
        var pc = collator.Tokenize(TextOrChat.FromMessages([new("user", "a"), new("assistant", "B"), new("user", "c")]), TextOrChat.FromMessages([new("assistant", "D")]));
        Assert.Equal("D<|im_end|>", TrainedText(pc));
        Assert.Throws<Engine.Core.InputException>(() => new SequenceCollator(Bytes).Tokenize(new MessagesExample([new("assistant", "x")])));
    }

    [Fact]
    public void Prompts_for_generation_end_with_the_assistant_header()
    {
        var collator = new SequenceCollator(Bytes, template: ChatTemplate.Llama3);
        var s = collator.TokenizePrompt(TextOrChat.FromMessages([new("user", "hi")]));
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", Decode(s.Ids));
        Assert.DoesNotContain(true, s.Trained);
    }

    [Fact]
    public void Preference_pairs_share_the_prompt_and_train_the_responses()
    {
        var collator = new SequenceCollator(Bytes);
        var (chosen, rejected) = collator.TokenizePair(new PreferenceExample(TextOrChat.FromText("Q"), TextOrChat.FromText(" yes"), TextOrChat.FromText(" no"), null, false));
        Assert.Equal((" yes</s>", " no</s>"), (TrainedText(chosen), TrainedText(rejected)));
        var batch = collator.Collate([chosen, rejected]);
        Assert.Equal((2, 6), (batch.Batch, batch.Time));
        Assert.Equal([6, 5], batch.Lengths);
        Assert.Equal(-100, batch.Targets[11]); // padding
        Assert.Equal(0, batch.Tokens[11]);
        Assert.Equal(-1, batch.DocumentIds[11]);
    }

    [Fact]
    public void Too_long_prompts_are_cut_from_the_left_keeping_bos_then_responses_from_the_right()
    {
        var options = new CollatorOptions { MaxLength = 8 };
        var collator = new SequenceCollator(BytesWithBos, options);
        var s = collator.Tokenize(new PromptCompletionExample(TextOrChat.FromText("0123456"), TextOrChat.FromText("ab")));
        Assert.Equal("<s>3456ab</s>", Decode(s.Ids));
        Assert.Equal(5, s.PromptLength);

        s = collator.Tokenize(new PromptCompletionExample(TextOrChat.FromText("01"), TextOrChat.FromText("abcdefghij")));
        Assert.Equal("<s>abcdefg", Decode(s.Ids)); // the whole prompt went first, then the response's end

        var right = new SequenceCollator(BytesWithBos, options with { TruncatePromptLeft = false });
        Assert.Equal("<s>0123456", Decode(right.Tokenize(new PromptCompletionExample(TextOrChat.FromText("0123456"), TextOrChat.FromText("ab"))).Ids));

        var capped = new SequenceCollator(BytesWithBos, new CollatorOptions { MaxLength = 100, MaxPromptLength = 3 });
        Assert.Equal("<s>56ab</s>", Decode(capped.Tokenize(new PromptCompletionExample(TextOrChat.FromText("0123456"), TextOrChat.FromText("ab"))).Ids));
        var cappedKeepStart = new SequenceCollator(BytesWithBos, new CollatorOptions { MaxLength = 100, MaxPromptLength = 3, TruncatePromptLeft = false });
        Assert.Equal("<s>01ab</s>", Decode(cappedKeepStart.Tokenize(new PromptCompletionExample(TextOrChat.FromText("0123456"), TextOrChat.FromText("ab"))).Ids));
    }

    [Fact]
    public void Packing_fills_fixed_rows_and_no_target_crosses_a_document_boundary()
    {
        var collator = new SequenceCollator(Bytes, new CollatorOptions { MaxLength = 8, Packing = true, PackingStrategy = PackingStrategy.Sequential });
        var examples = new Example[] { new TextExample("ab"), new TextExample("cde"), new TextExample("fghij"), new TextExample("k") };
        var batches = collator.Batches(examples, batchSize: 2).ToList();

        // Rows: [ab</s> cde</s> pad] [fghij</s> k</s>] — 3+4=7 tokens, then 6+2=8.
        var batch = Assert.Single(batches);
        Assert.Equal((2, 8), (batch.Batch, batch.Time));
        Assert.Equal("ab</s>cde</s>\0fghij</s>k</s>", Decode(batch.Tokens));
        Assert.Equal([0, 0, 0, 1, 1, 1, 1, -1, 0, 0, 0, 0, 0, 0, 1, 1], batch.DocumentIds);
        Assert.Equal([0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 2, 3, 4, 5, 0, 1], batch.Positions);
        int[] expected = ['b', Eos, -100, 'd', 'e', Eos, -100, -100, 'g', 'h', 'i', 'j', Eos, -100, Eos, -100];
        Assert.Equal(expected, batch.Targets);
        Assert.Equal(expected.Select(t => t == -100 ? 0f : 1f), batch.LossMask);
        Assert.Equal([7, 8], batch.Lengths);
        Assert.Equal(11, batch.TrainedTokens);
    }

    [Fact]
    public void Best_fit_decreasing_packing_is_the_default_and_fills_rows_tighter()
    {
        var collator = new SequenceCollator(Bytes, new CollatorOptions { MaxLength = 8, Packing = true });
        var examples = new Example[] { new TextExample("ab"), new TextExample("cde"), new TextExample("fghij"), new TextExample("k") };
        var batch = Assert.Single(collator.Batches(examples, batchSize: 2));

        // Longest first: fghij</s> (6) opens row 0, cde</s> (4) row 1, ab</s> (3) best fits row 1 (4 free, not 2), k</s> (2) fills row 0.
        Assert.Equal("fghij</s>k</s>cde</s>ab</s>\0", Decode(batch.Tokens));
        Assert.Equal([0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, -1], batch.DocumentIds);
        Assert.Equal([0, 1, 2, 3, 4, 5, 0, 1, 0, 1, 2, 3, 0, 1, 2, 0], batch.Positions);
        Assert.Equal([8, 7], batch.Lengths);
        Assert.Equal(Eos, batch.Targets[4]);
        Assert.Equal(-100, batch.Targets[5]);
        Assert.True(batch.IsPacked);
        Assert.Equal(batch.Positions, batch.PositionIds().ToArray());

        var plain = new SequenceCollator(Bytes).Collate([collator.Tokenize(examples[0]), collator.Tokenize(examples[2])]);
        Assert.False(plain.IsPacked);
        Assert.True(plain.PositionIds().IsEmpty);
    }

    [Fact]
    public void Best_fit_decreasing_puts_each_item_where_it_leaves_the_least_room()
    {
        // 7 opens row 0 (3 left), 6 row 1 (4 left), 5 row 2 (5 left); 4 fits rows 1 and 2 and takes row 1 (0 left);
        // 3 fits rows 0 and 2, takes row 0; 2 takes row 2 (3 left); 1 takes row 2.
        var rows = BestFitDecreasing.Pack([3, 7, 1, 5, 4, 6, 2], 10);
        Assert.Equal([[1, 0], [5, 4], [3, 6, 2]], rows);
        Assert.Throws<ArgumentOutOfRangeException>(() => BestFitDecreasing.Pack([11], 10));
    }

    [Fact]
    public void Packing_yields_full_batches_then_the_rest()
    {
        var collator = new SequenceCollator(Bytes, new CollatorOptions { MaxLength = 4 });
        var sequences = Enumerable.Range(0, 5).Select(i => collator.Tokenize(new TextExample("abc"))).ToList(); // 4 tokens each: one per row
        var batches = collator.Pack(sequences, rows: 2).ToList();
        Assert.Equal(3, batches.Count);
        Assert.Equal([4, 0], batches[2].Lengths);
        Assert.Throws<ArgumentException>(() => collator.Pack([new TokenizedSequence(new int[5], new bool[5], 0)], 1).ToList());
    }

    [Fact]
    public void Unpacked_batches_pad_to_the_longest()
    {
        var collator = new SequenceCollator(Bytes);
        var batches = collator.Batches([new TextExample("a"), new TextExample("abcd"), new TextExample("xy")], batchSize: 2).ToList();
        Assert.Equal([(2, 5), (1, 3)], batches.Select(b => (b.Batch, b.Time)));
        Assert.Throws<DatasetException>(() => collator.Tokenize(new PromptExample(TextOrChat.FromText("p"))));
    }
}
