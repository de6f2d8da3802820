using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Engine.Core.IO;

namespace Engine.Models.Tokenizers;

/// <summary>
/// Reads <c>tokenizer.json</c> with every field checked: any fault, including unsupported component types, is one
/// <see cref="TokenizerFormatException"/> naming the file and JSON path. Bounded: nesting depth is capped, ids must be
/// near the vocabulary size, and files above <see cref="MaxFileBytes"/> are refused before they are read.
/// </summary>
internal static class TokenizerJson
{
    /// <summary>The largest file accepted; real ones are under 40 MB.</summary>
    public const long MaxFileBytes = 1L << 30;

    /// <summary>Real files nest about six levels deep.</summary>
    private const int MaxDepth = 64;

    /// <summary>How far ids may run past the number of entries (holes are allowed, a 2-billion id is not).</summary>
    private const int MaxIdSlack = 1 << 20;

    /// <summary>Most normalizers one file may chain, nested sequences included (real files use up to five).</summary>
    public const int MaxNormalizers = 64;

    public static Tokenizer Read(string path)
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                throw new FileNotFoundException($"tokenizer file '{path}' does not exist", path);
            }

            long length = InputFiles.RegularFile(path, "the tokenizer file");
            if (length > MaxFileBytes)
            {
                throw new TokenizerFormatException(path, string.Empty, $"is {length} bytes, more than the {MaxFileBytes} accepted");
            }

            bytes = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? Gunzip(path) : InputFiles.ReadAllBytes(path, MaxFileBytes, "the tokenizer file");
        }
        catch (InvalidDataException e)
        {
            throw new TokenizerFormatException(path, string.Empty, $"is not valid gzip ({e.Message})", e);
        }

        return Parse(bytes, path);
    }

    private static byte[] Gunzip(string path)
    {
        using var file = InputFiles.OpenRead(path, "the tokenizer file");
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[1 << 16];
        int read;
        while ((read = gzip.Read(buffer, 0, buffer.Length)) > 0)
        {
            // A small gzip can expand without limit; stop at the same cap as for plain files.
            if (output.Length + read > MaxFileBytes)
            {
                throw new TokenizerFormatException(path, string.Empty, $"decompresses to more than the {MaxFileBytes} bytes accepted");
            }

            output.Write(buffer, 0, read);
        }

        return output.ToArray();
    }

    public static Tokenizer Parse(byte[] utf8, string file)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(file, string.Empty, $"is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            var root = new JsonField(file, string.Empty, document.RootElement);
            if (root.Kind != JsonValueKind.Object)
            {
                throw root.Error($"the document is {JsonField.KindName(root.Kind)}, expected an object");
            }

            var model = ReadModel(root.Required("model"), out var vocab);
            var added = ReadAddedTokens(root.Get("added_tokens"), vocab);
            int normalizers = 0;
            var normalizer = ReadNormalizer(root.Get("normalizer"), ref normalizers);
            var preTokenizer = ReadPreTokenizer(root.Get("pre_tokenizer"));
            var postProcessor = ReadPostProcessor(root.Get("post_processor"), vocab, added);
            var decoder = ReadDecoder(root.Get("decoder"));
            return new Tokenizer(normalizer, preTokenizer, model, postProcessor, decoder, added);
        }
    }

    private static BpeModel ReadModel(JsonField field, out Dictionary<string, int> vocab)
    {
        field.ExpectObject();
        var typeField = field.Get("type");
        string type = typeField.IsNull ? "BPE" : typeField.String();
        if (type != "BPE")
        {
            throw typeField.Error($"unsupported model type '{type}' (supported: BPE)");
        }

        var vocabField = field.Required("vocab").ExpectObject();
        vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var owners = new Dictionary<int, string>();
        int entries = 0;
        foreach (var property in vocabField.Element.EnumerateObject())
        {
            entries++;
        }

        long maxId = (long)entries + MaxIdSlack;
        foreach (var property in vocabField.Element.EnumerateObject())
        {
            var entry = new JsonField(vocabField.File, $"{vocabField.Path}[{Quote(property.Name)}]", property.Value);
            int id = entry.RequiredInt(0, (int)Math.Min(int.MaxValue, maxId));
            if (!vocab.TryAdd(property.Name, id))
            {
                throw entry.Error("the token appears more than once");
            }

            if (!owners.TryAdd(id, property.Name))
            {
                throw entry.Error($"id {id} is also the id of {Quote(owners[id])}");
            }
        }

        var options = new BpeOptions
        {
            UnkToken = field.Get("unk_token").OptionalString(),
            FuseUnk = field.Get("fuse_unk").Bool(false),
            ByteFallback = field.Get("byte_fallback").Bool(false),
            IgnoreMerges = field.Get("ignore_merges").Bool(false),
            ContinuingSubwordPrefix = field.Get("continuing_subword_prefix").OptionalString(),
            EndOfWordSuffix = field.Get("end_of_word_suffix").OptionalString(),
            Dropout = field.Get("dropout").OptionalDouble(),
        };
        if (options.UnkToken is not null && !vocab.ContainsKey(options.UnkToken))
        {
            throw field.Get("unk_token").Error($"{Quote(options.UnkToken)} is not in the vocabulary");
        }

        var mergesField = field.Get("merges");
        var merges = new List<(int A, int B)>(mergesField.Count);
        if (!mergesField.IsNull)
        {
            foreach (var merge in mergesField.Items())
            {
                string a;
                string b;
                if (merge.Kind == JsonValueKind.String)
                {
                    // The older form: "a b", split at the first space.
                    string text = merge.String();
                    int space = text.IndexOf(' ', StringComparison.Ordinal);
                    if (space < 0)
                    {
                        throw merge.Error($"{Quote(text)} is not two tokens separated by a space");
                    }

                    a = text[..space];
                    b = text[(space + 1)..];
                }
                else if (merge.Kind == JsonValueKind.Array && merge.Count == 2)
                {
                    var parts = merge.Items().ToArray();
                    a = parts[0].String();
                    b = parts[1].String();
                }
                else
                {
                    throw merge.Error($"expected \"a b\" or [\"a\", \"b\"], found {JsonField.KindName(merge.Kind)}");
                }

                if (!vocab.TryGetValue(a, out int idA))
                {
                    throw merge.Error($"token {Quote(a)} is not in the vocabulary");
                }

                if (!vocab.TryGetValue(b, out int idB))
                {
                    throw merge.Error($"token {Quote(b)} is not in the vocabulary");
                }

                if (!vocab.ContainsKey(a + b))
                {
                    throw merge.Error($"the merged token {Quote(a + b)} is not in the vocabulary");
                }

                merges.Add((idA, idB));
            }
        }

        return new BpeModel(vocab, [.. merges], options);
    }

    private static List<AddedToken> ReadAddedTokens(JsonField field, Dictionary<string, int> vocab)
    {
        var result = new List<AddedToken>();
        if (field.IsNull)
        {
            return result;
        }

        long maxId = (long)vocab.Count + MaxIdSlack;
        foreach (var item in field.Items())
        {
            item.ExpectObject();
            bool special = item.Get("special").Bool(false);
            string content = item.Required("content").String();
            if (content.Length == 0)
            {
                throw item.Get("content").Error("is empty");
            }

            result.Add(new AddedToken(
                item.Required("id").RequiredInt(0, (int)Math.Min(int.MaxValue, maxId)),
                content,
                special,
                item.Get("single_word").Bool(false),
                item.Get("lstrip").Bool(false),
                item.Get("rstrip").Bool(false),
                item.Get("normalized").Bool(!special)));
        }

        return result;
    }

    private static Normalizer? ReadNormalizer(JsonField field, ref int count)
    {
        if (field.IsNull)
        {
            return null;
        }

        if (++count > MaxNormalizers)
        {
            throw field.Error($"more than {MaxNormalizers} normalizers in one file");
        }

        var normalizer = ReadNormalizerOfType(field, field.TypeName(), ref count);
        normalizer.Origin = (field.File, field.Path);
        return normalizer;
    }

    private static Normalizer ReadNormalizerOfType(JsonField field, string type, ref int count)
    {
        switch (type)
        {
            case "NFC":
            case "NFD":
            case "NFKC":
            case "NFKD":
                if (!UnicodeNormalizer.IsAvailable)
                {
                    throw field.Get("type").Error($"{type} needs Unicode normalization, which is unavailable: the process runs with invariant globalization (set InvariantGlobalization to false)");
                }

                return new UnicodeNormalizer(type, type switch
                {
                    "NFC" => NormalizationForm.FormC,
                    "NFD" => NormalizationForm.FormD,
                    "NFKC" => NormalizationForm.FormKC,
                    _ => NormalizationForm.FormKD,
                });
            case "Lowercase":
                return new LowercaseNormalizer();
            case "StripAccents":
                return new StripAccentsNormalizer();
            case "Strip":
                return new StripNormalizer(field.Get("strip_left").Bool(true), field.Get("strip_right").Bool(true));
            case "Prepend":
                return new PrependNormalizer(field.Required("prepend").String());
            case "Replace":
                return new ReplaceNormalizer(ReadPattern(field.Required("pattern")), field.Required("content").String());
            case "Sequence":
                var steps = new List<Normalizer>();
                foreach (var item in field.Required("normalizers").Items())
                {
                    steps.Add(ReadNormalizer(item, ref count) ?? throw item.Error("is null"));
                }

                return new SequenceNormalizer(steps);
            default:
                throw field.Get("type").Error($"unsupported normalizer type '{type}' (supported: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Prepend, Replace, Sequence)");
        }
    }

    private static PreTokenizer? ReadPreTokenizer(JsonField field)
    {
        if (field.IsNull)
        {
            return null;
        }

        string type = field.TypeName();
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(field.Get("add_prefix_space").Bool(true), field.Get("use_regex").Bool(true), field.Get("trim_offsets").Bool(true));
            case "Split":
            {
                var behaviorField = field.Required("behavior");
                string behavior = behaviorField.String();
                if (!Enum.TryParse<SplitBehavior>(behavior, false, out var parsed) || !Enum.IsDefined(parsed))
                {
                    throw behaviorField.Error($"unknown behavior '{behavior}' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
                }

                return new SplitPreTokenizer(ReadPattern(field.Required("pattern")), parsed, field.Get("invert").Bool(false));
            }

            case "Sequence":
                return new SequencePreTokenizer([.. field.Required("pretokenizers").Items().Select(p => ReadPreTokenizer(p) ?? throw p.Error("is null"))]);
            case "WhitespaceSplit":
                return new WhitespaceSplitPreTokenizer();
            case "Digits":
                return new DigitsPreTokenizer(field.Get("individual_digits").Bool(false));
            default:
                throw field.Get("type").Error($"unsupported pre-tokenizer type '{type}' (supported: ByteLevel, Split, Sequence, WhitespaceSplit, Digits)");
        }
    }

    private static SplitPattern ReadPattern(JsonField field)
    {
        field.ExpectObject();
        var regex = field.Get("Regex");
        if (!regex.IsNull)
        {
            string source = regex.String();
            try
            {
                return SplitPattern.FromRegex(source, regex.File, regex.Path);
            }
            catch (ArgumentException e)
            {
                throw regex.Error($"invalid regular expression ({e.Message})", e);
            }
        }

        var text = field.Get("String");
        if (!text.IsNull)
        {
            return SplitPattern.FromString(text.String());
        }

        throw field.Error("expected {\"Regex\": ...} or {\"String\": ...}");
    }

    private static PostProcessor? ReadPostProcessor(JsonField field, Dictionary<string, int> vocab, List<AddedToken> added)
    {
        if (field.IsNull)
        {
            return null;
        }

        string type = field.TypeName();
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPostProcessor(field.Get("add_prefix_space").Bool(true), field.Get("trim_offsets").Bool(true), field.Get("use_regex").Bool(true));
            case "TemplateProcessing":
                return ReadTemplate(field, vocab, added);
            case "BertProcessing":
            case "RobertaProcessing":
            {
                int cls = ReadTokenPair(field.Required("cls"));
                int sep = ReadTokenPair(field.Required("sep"));
                return new TemplatePostProcessor([[cls], null, [sep]], field.Element.Clone());
            }

            case "Sequence":
                return new SequencePostProcessor([.. field.Required("processors").Items().Select(p => ReadPostProcessor(p, vocab, added) ?? throw p.Error("is null"))]);
            default:
                throw field.Get("type").Error($"unsupported post-processor type '{type}' (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)");
        }
    }

    /// <summary>A <c>["[CLS]", 101]</c> pair; the id.</summary>
    private static int ReadTokenPair(JsonField field)
    {
        if (field.Kind != JsonValueKind.Array || field.Count != 2)
        {
            throw field.Error($"expected [token, id], found {JsonField.KindName(field.Kind)}");
        }

        var parts = field.Items().ToArray();
        parts[0].String();
        return parts[1].RequiredInt(0);
    }

    private static TemplatePostProcessor ReadTemplate(JsonField field, Dictionary<string, int> vocab, List<AddedToken> added)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var specialsField = field.Get("special_tokens");
        if (!specialsField.IsNull)
        {
            specialsField.ExpectObject();
            foreach (var property in specialsField.Element.EnumerateObject())
            {
                var entry = new JsonField(specialsField.File, $"{specialsField.Path}[{Quote(property.Name)}]", property.Value).ExpectObject();
                specials[property.Name] = [.. entry.Required("ids").Items().Select(i => i.RequiredInt(0))];
            }
        }

        var items = new List<int[]?>();
        foreach (var item in field.Required("single").Items())
        {
            item.ExpectObject();
            var special = item.Get("SpecialToken");
            var sequence = item.Get("Sequence");
            if (!special.IsNull)
            {
                var idField = special.ExpectObject().Required("id");
                string name = idField.String();
                if (specials.TryGetValue(name, out int[]? ids))
                {
                    items.Add(ids);
                }
                else if (added.FirstOrDefault(t => t.Content == name) is { } token)
                {
                    items.Add([token.Id]);
                }
                else if (vocab.TryGetValue(name, out int id))
                {
                    items.Add([id]);
                }
                else
                {
                    throw idField.Error($"special token {Quote(name)} is neither in special_tokens nor in the vocabulary");
                }
            }
            else if (!sequence.IsNull)
            {
                var idField = sequence.ExpectObject().Required("id");
                string name = idField.String();
                if (name != "A")
                {
                    throw idField.Error($"the single-sequence template can only hold sequence A, found '{name}'");
                }

                items.Add(null);
            }
            else
            {
                throw item.Error("expected a SpecialToken or a Sequence");
            }
        }

        return new TemplatePostProcessor(items, field.Element.Clone());
    }

    private static Decoder? ReadDecoder(JsonField field)
    {
        if (field.IsNull)
        {
            return null;
        }

        string type = field.TypeName();
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelDecoder();
            case "ByteFallback":
                return new ByteFallbackDecoder();
            case "Fuse":
                return new FuseDecoder();
            case "Replace":
                return new ReplaceDecoder(ReadPattern(field.Required("pattern")), field.Required("content").String());
            case "Strip":
            {
                var contentField = field.Required("content");
                string content = contentField.String();
                if (content.Length != 1)
                {
                    throw contentField.Error("expected a single character");
                }

                return new StripDecoder(content[0], field.Get("start").Int(0, 0), field.Get("stop").Int(0, 0));
            }

            case "Metaspace":
            {
                string replacement = field.Get("replacement").OptionalString() ?? "\u2581";
                if (replacement.Length != 1)
                {
                    throw field.Get("replacement").Error("expected a single character");
                }

                string scheme = field.Get("prepend_scheme").OptionalString() ?? (field.Get("add_prefix_space").Bool(true) ? "always" : "never");
                return new MetaspaceDecoder(replacement[0], scheme != "never", field.Element.Clone());
            }

            case "Sequence":
                return new SequenceDecoder([.. field.Required("decoders").Items().Select(d => ReadDecoder(d) ?? throw d.Error("is null"))]);
            default:
                throw field.Get("type").Error($"unsupported decoder type '{type}' (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)");
        }
    }

    /// <summary>A token in quotes with control characters escaped, shortened when long, for messages.</summary>
    internal static string Quote(string token)
    {
        var sb = new StringBuilder("\"");
        int shown = 0;
        foreach (char c in token)
        {
            if (shown++ == 60)
            {
                sb.Append('…');
                break;
            }

            sb.Append(char.IsControl(c) ? string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}") : c.ToString());
        }

        return sb.Append('"').ToString();
    }
}
