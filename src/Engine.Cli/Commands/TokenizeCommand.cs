using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Models.Tokenizers;

namespace Engine.Cli.Commands;

/// <summary><c>engine tokenize</c> (encode or decode with a tokenizer.json) and <c>engine tokenizer train</c>.</summary>
internal static class TokenizeCommand
{
    /// <summary>Adds both commands to the root.</summary>
    public static void AddTo(RootCommand root)
    {
        root.Add(CreateTokenize());
        root.Add(CreateTokenizer());
    }

    private static Command CreateTokenize()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "a tokenizer.json (or .json.gz)", Required = true };
        var text = new Option<string?>("--text") { Description = "the text (with --decode: the ids)" };
        var file = new Option<string?>("--file") { Description = "read the text (with --decode: the ids) from this file" };
        var json = new Option<bool>("--json") { Description = "print JSON: ids and tokens, or the decoded text" };
        var decode = new Option<bool>("--decode") { Description = "decode ids (space- or comma-separated, or a JSON array) to text" };
        var noSpecial = new Option<bool>("--no-special") { Description = "encode: do not add the template's special tokens; decode: drop special tokens" };
        var command = new Command("tokenize", "Encode text to token ids, or decode ids to text, with a Hugging Face tokenizer.json.")
        {
            tokenizer, text, file, json, decode, noSpecial,
        };
        command.SetAction(parse =>
        {
            string input = ReadInput(parse.GetValue(text), parse.GetValue(file));
            var loaded = Load(parse.GetValue(tokenizer)!);
            bool asJson = parse.GetValue(json);
            bool special = !parse.GetValue(noSpecial);
            if (parse.GetValue(decode))
            {
                string decoded = Decode(loaded, ParseIds(input), skipSpecialTokens: !special);
                Console.Out.WriteLine(asJson ? JsonSerializer.Serialize(new Dictionary<string, string> { ["text"] = decoded }) : decoded);
                return 0;
            }

            int[] ids = loaded.Encode(input, addSpecialTokens: special);
            if (asJson)
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["ids"] = ids,
                    ["tokens"] = ids.Select(id => loaded.IdToToken(id)).ToArray(),
                }));
            }
            else
            {
                Console.Out.WriteLine(string.Join(' ', ids.Select(id => id.ToString(CultureInfo.InvariantCulture))));
            }

            return 0;
        });
        return command;
    }

    private static Command CreateTokenizer()
    {
        var defaults = new BpeTrainerOptions();
        var corpus = new Option<string>("--corpus") { Description = "a UTF-8 text file to learn from", Required = true };
        var vocabSize = new Option<int>("--vocab-size") { Description = "target vocabulary: 256 bytes + special tokens + merges", DefaultValueFactory = _ => defaults.VocabSize };
        var output = new Option<string>("--out") { Description = "where to write tokenizer.json", Required = true };
        var special = new Option<string[]>("--special") { Description = "a special token (repeat for several)", DefaultValueFactory = _ => [.. defaults.SpecialTokens] };
        var minFrequency = new Option<int>("--min-frequency") { Description = "never merge a pair seen fewer times", DefaultValueFactory = _ => defaults.MinFrequency };
        var pattern = new Option<string>("--pattern") { Description = "pre-tokenization: gpt2, llama3 or qwen2", DefaultValueFactory = _ => "gpt2" };
        pattern.AcceptOnlyFromAmong("gpt2", "llama3", "qwen2");
        var train = new Command("train", "Train a byte-level BPE tokenizer on a text file and write tokenizer.json.")
        {
            corpus, vocabSize, output, special, minFrequency, pattern,
        };
        train.SetAction(parse =>
        {
            var options = new BpeTrainerOptions
            {
                VocabSize = parse.GetValue(vocabSize),
                MinFrequency = parse.GetValue(minFrequency),
                SpecialTokens = parse.GetValue(special) ?? [],
                PreTokenization = parse.GetValue(pattern) switch
                {
                    "llama3" => PreTokenization.Llama3,
                    "qwen2" => PreTokenization.Qwen2,
                    _ => PreTokenization.Gpt2,
                },
            };
            string corpusPath = parse.GetValue(corpus)!;
            if (!File.Exists(corpusPath))
            {
                throw new CommandException($"--corpus: file '{corpusPath}' does not exist");
            }

            var clock = Stopwatch.StartNew();
            var trained = BpeTrainer.Train(ReadChunks(corpusPath), options);
            string outPath = parse.GetValue(output)!;
            if (Path.GetDirectoryName(Path.GetFullPath(outPath)) is { } outDirectory)
            {
                Directory.CreateDirectory(outDirectory);
            }

            trained.Save(outPath);
            Console.Out.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"trained {trained.VocabSize} tokens ({trained.VocabSize - 256 - options.SpecialTokens.Count} merges) in {clock.Elapsed.TotalSeconds:F1} s -> {outPath}"));
            return 0;
        });
        return new Command("tokenizer", "Tokenizer tools.") { train };
    }

    /// <summary>The corpus in pieces of about a megabyte cut after a line break, so counting can run in parallel.</summary>
    private static IEnumerable<string> ReadChunks(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        var chunk = new StringBuilder();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            chunk.Append(line).Append('\n');
            if (chunk.Length >= 1 << 20)
            {
                yield return chunk.ToString();
                chunk.Clear();
            }
        }

        if (chunk.Length > 0)
        {
            yield return chunk.ToString();
        }
    }

    private static string ReadInput(string? text, string? file)
    {
        if ((text is null) == (file is null))
        {
            throw new CommandException("give exactly one of --text and --file");
        }

        return text ?? File.ReadAllText(file!);
    }

    private static Tokenizer Load(string path)
    {
        try
        {
            return Tokenizer.FromFile(path);
        }
        catch (TokenizerFormatException e)
        {
            throw new CommandException(e.Message, e);
        }
    }

    private static string Decode(Tokenizer tokenizer, int[] ids, bool skipSpecialTokens)
    {
        try
        {
            return tokenizer.Decode(ids, skipSpecialTokens);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new CommandException($"--decode: token id {e.ActualValue} is not in the vocabulary (size {tokenizer.VocabSize})", e);
        }
    }

    /// <summary>Ids separated by whitespace or commas, optionally inside [ ].</summary>
    internal static int[] ParseIds(string input)
    {
        var parts = input.Trim().TrimStart('[').TrimEnd(']').Split([' ', ',', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]))
            {
                throw new CommandException($"--decode: '{parts[i]}' is not a token id");
            }
        }

        return ids;
    }
}
