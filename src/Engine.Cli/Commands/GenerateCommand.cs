using System.CommandLine;
using Engine.Models.Chat;
using Engine.Models.Generation;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine generate MODEL_DIR --prompt TEXT</c>: continues a prompt (or, with <c>--chat</c>, answers it as a user turn
/// in the model's chat template) and streams the decoded text to stdout as tokens arrive.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var defaults = new GenerationOptions();
        var model = new Argument<string>("MODEL_DIR") { Description = "a Hugging Face checkpoint directory" };
        var prompt = new Option<string>("--prompt") { Description = "the text to continue (or, with --chat, the user's message)", Required = true };
        var chat = new Option<bool>("--chat") { Description = "render the prompt as a user turn with the chat template and the assistant generation prompt" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most tokens generated", DefaultValueFactory = _ => defaults.MaxNewTokens };
        var temperature = new Option<float>("--temperature") { Description = "softmax temperature; 0 = greedy", DefaultValueFactory = _ => defaults.Temperature };
        var topK = new Option<int>("--top-k") { Description = "keep only the K most likely tokens; 0 = all", DefaultValueFactory = _ => defaults.TopK };
        var topP = new Option<float>("--top-p") { Description = "nucleus sampling threshold; 1 = all", DefaultValueFactory = _ => defaults.TopP };
        var seed = new Option<ulong>("--seed") { Description = "seed of the sampling stream", DefaultValueFactory = _ => defaults.Seed };
        var stop = new Option<string[]>("--stop")
        {
            Description = "tokens that end generation (default: the tokenizer's EOS; with --chat also the template's end of turn)",
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => [],
        };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "a tokenizer.json (default: the one in the model directory)" };
        var template = new Option<string?>("--chat-template") { Description = "chatml, llama3 or alpaca (default: recognised from the tokenizer files, if any)" };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var threads = new Option<int>("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var adapter = LoraCommand.AdapterOption();
        var command = new Command("generate", "Generate a continuation of a prompt and stream it to stdout.")
        {
            model, prompt, chat, maxNew, temperature, topK, topP, seed, stop, tokenizer, template, device, tf32, threads, adapter,
        };
        command.SetAction(parse =>
        {
            string dir = ModelInputs.ExistingDirectory(parse.GetValue(model)!, "MODEL_DIR");

            if (parse.GetValue(threads) < 1)
            {
                throw new CommandException("--threads must be at least 1");
            }

            string tokenizerPath = ModelInputs.TokenizerPath(parse.GetValue(tokenizer), dir);
            var tok = ModelInputs.LoadTokenizer(tokenizerPath);
            var config = HfCheckpoint.ReadConfig(dir);
            int? eos = ModelInputs.EosTokenId(config, tok);
            var stops = new List<int>();
            foreach (string name in parse.GetValue(stop) ?? [])
            {
                stops.Add(tok.TokenToId(name) ?? throw new CommandException($"--stop: '{name}' is not a token of the tokenizer"));
            }

            if (stops.Count == 0 && eos is int e)
            {
                stops.Add(e);
            }

            var ids = new List<int>();
            string text = parse.GetValue(prompt)!;
            if (parse.GetValue(chat))
            {
                var chatTemplate = ModelInputs.Template(parse.GetValue(template), tokenizerPath)
                    ?? throw new CommandException("--chat: the model has no recognised chat template; name one with --chat-template");
                text = chatTemplate.Render([new ChatMessage(ChatMessage.User, text)], addGenerationPrompt: true).Text;
                if (chatTemplate.EndOfTurn.Length > 0 && tok.TokenToId(chatTemplate.EndOfTurn) is int endOfTurn && !stops.Contains(endOfTurn))
                {
                    stops.Add(endOfTurn);
                }

                ids.AddRange(tok.Encode(text, addSpecialTokens: false));
            }
            else
            {
                var encoder = ModelInputs.Encoder(tok, eos);
                if (encoder.BosTokenId is int bos)
                {
                    ids.Add(bos);
                }

                ids.AddRange(encoder.Encode(text));
            }

            if (ids.Count == 0)
            {
                throw new CommandException("--prompt: encodes to no tokens");
            }

            if (ids.Count > config.Model.MaxSequenceLength)
            {
                throw new CommandException(
                    $"--prompt: {ids.Count} tokens{(parse.GetValue(chat) ? " in the chat template" : "")} do not fit the model's context of {config.Model.MaxSequenceLength} (max_position_embeddings in {Path.Combine(dir, HfCheckpoint.ConfigFile)})");
            }

            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                Seed = parse.GetValue(seed),
                StopTokens = stops,
            };
            OptionChecks.Validate(options.Validate, null);

            using var backend = DeviceOption.CreateBackend(parse.GetValue(device), parse.GetValue(threads), tf32: parse.GetValue(tf32));
            using var net = HfCheckpoint.Load(dir, backend, trainable: false);
            LoraCommand.Apply(net, parse.GetValue(adapter));
            if (ids.Count > net.Config.MaxSequenceLength)
            {
                throw new CommandException($"--prompt: {ids.Count} tokens do not fit the model's context of {net.Config.MaxSequenceLength}");
            }

            using var generator = new Generator(net);
            var stream = new TextStream(tok, stops);
            var output = Console.Out;
            generator.Generate([ids], options, t =>
            {
                output.Write(stream.Add(t.Token));
                output.Flush();
            });
            output.WriteLine(stream.Finish());
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Incremental decoding: keeps the generated ids, decodes them all after each token and hands out only the new
    /// suffix, holding back a trailing U+FFFD (an incomplete UTF-8 sequence that a later token may complete). Stop tokens
    /// and ids the tokenizer does not have are not printed.
    /// </summary>
    internal sealed class TextStream(Tokenizer tokenizer, IReadOnlyCollection<int> stops)
    {
        private readonly List<int> ids = [];
        private int printed;

        /// <summary>The text newly completed by <paramref name="token"/>.</summary>
        public string Add(int token)
        {
            // A vocabulary padded past the tokenizer's (Qwen2.5's 151936 rows for 151665 tokens, or a fresh model from
            // engine init) can sample an id with no text; it prints nothing.
            if (!stops.Contains(token) && tokenizer.IdToToken(token) is not null)
            {
                ids.Add(token);
            }

            string text = tokenizer.Decode(ids.ToArray());
            int end = text.Length;
            while (end > printed && text[end - 1] == '\uFFFD')
            {
                end--;
            }

            return Take(text, end);
        }

        /// <summary>Whatever was held back (an incomplete tail stays as U+FFFD).</summary>
        public string Finish()
        {
            string text = tokenizer.Decode(ids.ToArray());
            return Take(text, text.Length);
        }

        private string Take(string text, int end)
        {
            if (end <= printed)
            {
                return "";
            }

            // A decode can revise earlier text (e.g. a tokenizer's clean-up); print from where we were regardless.
            string suffix = text[Math.Min(printed, end)..end];
            printed = end;
            return suffix;
        }
    }
}
