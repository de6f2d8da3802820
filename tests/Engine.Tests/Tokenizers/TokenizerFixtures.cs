using System.Collections.Concurrent;
using System.Text.Json;
using Engine.Models.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>The committed tokenizer files and the ids @huggingface/tokenizers gave for them (tests/fixtures/tokenizers/generate.mjs).</summary>
public static class TokenizerFixtures
{
    private static readonly ConcurrentDictionary<string, Tokenizer> Loaded = new();
    private static readonly Lazy<Dictionary<string, Case[]>> Expected = new(LoadExpected);

    public static string Directory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");

    public static string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>The tokenizer in <paramref name="name"/>, loaded once per test run.</summary>
    public static Tokenizer Get(string name) => Loaded.GetOrAdd(name, n => Tokenizer.FromFile(PathOf(n)));

    public static Case[] CasesOf(string name) => Expected.Value[name];

    private static Dictionary<string, Case[]> LoadExpected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(PathOf("expected.json")));
        var result = new Dictionary<string, Case[]>();
        foreach (var file in doc.RootElement.EnumerateObject())
        {
            result[file.Name] = [.. file.Value.EnumerateArray().Select(c => new Case(
                c.GetProperty("text").GetString()!,
                [.. c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32())],
                [.. c.GetProperty("ids_plain").EnumerateArray().Select(i => i.GetInt32())],
                c.GetProperty("decoded").GetString()!))];
        }

        return result;
    }

    public sealed record Case(string Text, int[] Ids, int[] IdsPlain, string Decoded);
}
