using System.Globalization;
using System.Text;

namespace Engine.Models.Chat.Jinja;

/// <summary>
/// Methods of strings and objects (<c>.strip()</c>, <c>.split()</c>, <c>.get()</c>, <c>.items()</c>, …) and the global
/// functions (<c>namespace</c>, <c>range</c>, <c>raise_exception</c>, <c>strftime_now</c>). Nothing here reads files,
/// the network or the environment; the only outside input is the clock of <c>strftime_now</c>, which the caller sets.
/// </summary>
internal static class JinjaBuiltins
{
    private static readonly char[] Whitespace = Enumerable.Range(0, 0x10000).Select(i => (char)i).Where(JinjaLexer.IsWhitespace).ToArray();

    private static readonly string[] StringMethods = ["upper", "lower", "strip", "title", "capitalize", "rstrip", "lstrip", "startswith", "endswith", "split", "replace"];

    /// <summary>JavaScript's <c>String.prototype.trim</c>.</summary>
    public static string Trim(string s) => s.Trim(Whitespace);

    /// <summary>JavaScript's <c>String.prototype.trimEnd</c>.</summary>
    public static string TrimEnd(string s) => s.TrimEnd(Whitespace);

    public static JinjaValue? StringMethod(JinjaString s, string name) => name == "length"
        ? new JinjaNumber(s.Value.Length, true)
        : StringMethods.Contains(name) ? new JinjaFunction((args, _) => CallStringMethod(s, name, args)) : null;

    public static JinjaValue ArrayMember(JinjaArray a, string name) => name == "length" ? new JinjaNumber(a.Items.Count, true) : JinjaUndefined.Instance;

    public static JinjaValue CallStringMethod(JinjaString str, string name, List<JinjaValue> args)
    {
        string s = str.Value;
        switch (name)
        {
            case "upper":
                return new JinjaString(s.ToUpperInvariant());
            case "lower":
                return new JinjaString(s.ToLowerInvariant());
            case "strip":
                return new JinjaString(Trim(s));
            case "rstrip":
                return new JinjaString(TrimEnd(s));
            case "lstrip":
                return new JinjaString(s.TrimStart(Whitespace));
            case "title":
                return new JinjaString(Title(s));
            case "capitalize":
                return new JinjaString(s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..]);
            case "startswith" or "endswith":
            {
                Func<string, bool> test = name == "startswith" ? p => s.StartsWith(p, StringComparison.Ordinal) : p => s.EndsWith(p, StringComparison.Ordinal);
                return args.FirstOrDefault() switch
                {
                    JinjaString p => JinjaBool.Of(test(p.Value)),
                    JinjaArray options => JinjaBool.Of(options.Items.Any(o => o is JinjaString p ? test(p.Value) : throw new JinjaError($"{name}() tuple elements must be strings"))),
                    null => throw new JinjaError($"{name}() requires at least one argument"),
                    _ => throw new JinjaError($"{name}() argument must be a string or tuple of strings"),
                };
            }

            case "split":
                return Split(s, args);
            case "replace":
                return Replace(s, args);
            default:
                throw new JinjaError($"unknown string method '{name}'");
        }
    }

    // JavaScript: value.replace(/\b\w/g, c => c.toUpperCase()); word characters are ASCII.
    private static string Title(string s)
    {
        var sb = new StringBuilder(s);
        for (int i = 0; i < sb.Length; i++)
        {
            if (IsWord(sb[i]) && (i == 0 || !IsWord(sb[i - 1])))
            {
                sb[i] = char.ToUpperInvariant(sb[i]);
            }
        }

        return sb.ToString();

        static bool IsWord(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';
    }

    // Python's str.split(sep=None, maxsplit=-1).
    private static JinjaArray Split(string s, List<JinjaValue> args)
    {
        var sep = args.ElementAtOrDefault(0) ?? JinjaNull.Instance;
        var max = args.ElementAtOrDefault(1) ?? new JinjaNumber(-1, true);
        if (sep is not (JinjaString or JinjaNull) || max is not JinjaNumber { IsInteger: true } m)
        {
            throw new JinjaError("split() takes a string (or none) separator and an integer maxsplit");
        }

        int maxsplit = (int)Math.Clamp(m.Value, -1, int.MaxValue);
        var parts = new List<string>();
        if (sep is JinjaString { Value: var separator })
        {
            if (separator.Length == 0)
            {
                throw new JinjaError("split(): empty separator");
            }

            var all = s.Split(separator);
            if (maxsplit >= 0 && all.Length > maxsplit)
            {
                parts.AddRange(all.Take(maxsplit));
                parts.Add(string.Join(separator, all.Skip(maxsplit)));
            }
            else
            {
                parts.AddRange(all);
            }
        }
        else
        {
            string text = s.TrimStart(Whitespace);
            int i = 0;
            while (i < text.Length)
            {
                int start = i;
                while (i < text.Length && !JinjaLexer.IsWhitespace(text[i]))
                {
                    i++;
                }

                if (maxsplit >= 0 && parts.Count >= maxsplit)
                {
                    parts.Add(text[start..]);
                    break;
                }

                parts.Add(text[start..i]);
                while (i < text.Length && JinjaLexer.IsWhitespace(text[i]))
                {
                    i++;
                }
            }
        }

        return new JinjaArray(parts.Select(p => (JinjaValue)new JinjaString(p)).ToList());
    }

    private static JinjaString Replace(string s, List<JinjaValue> args)
    {
        if (args.Count < 2 || args[0] is not JinjaString old || args[1] is not JinjaString replacement)
        {
            throw new JinjaError("replace() takes two strings");
        }

        var count = args.Count > 2 ? args[2] is JinjaObject { IsKeywordArguments: true } kw ? kw.Get("count") ?? JinjaNull.Instance : args[2] : JinjaNull.Instance;
        if (count is not (JinjaNull or JinjaNumber { IsInteger: true }))
        {
            throw new JinjaError("replace() count must be an integer or none");
        }

        long remaining = count is JinjaNumber n && n.Value >= 0 ? (long)n.Value : long.MaxValue;
        if (remaining == 0)
        {
            return new JinjaString(s);
        }

        var sb = new StringBuilder();
        if (old.Value.Length == 0)
        {
            // JavaScript's /(?=)/gu: an empty match before every code point and at the end.
            for (int i = 0; i <= s.Length; i++)
            {
                if (remaining-- > 0)
                {
                    sb.Append(replacement.Value);
                }

                if (i < s.Length)
                {
                    sb.Append(s[i]);
                    if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        sb.Append(s[++i]);
                    }
                }
            }

            return new JinjaString(sb.ToString());
        }

        int at = 0;
        while (remaining-- > 0)
        {
            int found = s.IndexOf(old.Value, at, StringComparison.Ordinal);
            if (found < 0)
            {
                break;
            }

            sb.Append(s, at, found - at).Append(replacement.Value);
            at = found + old.Value.Length;
        }

        return new JinjaString(sb.Append(s, at, s.Length - at).ToString());
    }

    public static JinjaArray Items(JinjaObject o) =>
        new(o.Entries.Select(kv => (JinjaValue)new JinjaArray([new JinjaString(kv.Key), kv.Value])).ToList());

    public static JinjaValue? ObjectMethod(JinjaObject o, string name) => name switch
    {
        "get" => new JinjaFunction((args, _) =>
        {
            var key = args.ElementAtOrDefault(0) ?? JinjaUndefined.Instance;
            return key is JinjaString k ? o.Get(k.Value) ?? args.ElementAtOrDefault(1) ?? JinjaNull.Instance : throw new JinjaError($"object key must be a string: got {key.TypeName}");
        }),
        "items" => new JinjaFunction((_, _) => Items(o)),
        "keys" => new JinjaFunction((_, _) => new JinjaArray(o.Entries.Keys.Select(k => (JinjaValue)new JinjaString(k)).ToList())),
        "values" => new JinjaFunction((_, _) => new JinjaArray(o.Entries.Values.ToList())),
        "dictsort" => new JinjaFunction((args, _) => DictSort(o, args)),
        _ => null,
    };

    private static JinjaArray DictSort(JinjaObject o, List<JinjaValue> args)
    {
        var kwargs = args.OfType<JinjaObject>().FirstOrDefault(a => a.IsKeywordArguments) ?? new JinjaObject([]);
        var positional = args.Where(a => a is not JinjaObject { IsKeywordArguments: true }).ToList();
        var caseSensitive = positional.ElementAtOrDefault(0) ?? kwargs.Get("case_sensitive") ?? JinjaBool.False;
        var by = positional.ElementAtOrDefault(1) ?? kwargs.Get("by") ?? new JinjaString("key");
        var reverse = positional.ElementAtOrDefault(2) ?? kwargs.Get("reverse") ?? JinjaBool.False;
        if (caseSensitive is not JinjaBool c || reverse is not JinjaBool r || by is not JinjaString { Value: "key" or "value" } b)
        {
            throw new JinjaError("dictsort: case_sensitive and reverse must be booleans, by must be 'key' or 'value'");
        }

        int index = b.Value == "key" ? 0 : 1;
        var items = Items(o).Items.Select((item, i) => (item: (JinjaArray)item, i)).ToList();
        items.Sort((x, y) =>
        {
            int cmp = Compare(x.item.Items[index], y.item.Items[index], c.Value);
            cmp = r.Value ? -cmp : cmp;
            return cmp != 0 ? cmp : x.i.CompareTo(y.i);
        });
        return new JinjaArray(items.Select(x => (JinjaValue)x.item).ToList());
    }

    /// <summary><c>compareRuntimeValues</c>: numbers (and booleans) with numbers, strings with strings.</summary>
    public static int Compare(JinjaValue a, JinjaValue b, bool caseSensitive)
    {
        if (a is JinjaNull && b is JinjaNull)
        {
            return 0;
        }

        if (a is JinjaUndefined && b is JinjaUndefined)
        {
            return 0;
        }

        if (a is JinjaNumber or JinjaBool && b is JinjaNumber or JinjaBool)
        {
            double x = a is JinjaNumber na ? na.Value : ((JinjaBool)a).Value ? 1 : 0;
            double y = b is JinjaNumber nb ? nb.Value : ((JinjaBool)b).Value ? 1 : 0;
            return x.CompareTo(y);
        }

        if (a is JinjaString sa && b is JinjaString sb)
        {
            string x = caseSensitive ? sa.Value : sa.Value.ToLowerInvariant();
            string y = caseSensitive ? sb.Value : sb.Value.ToLowerInvariant();
            return Math.Sign(string.CompareOrdinal(x, y));
        }

        throw new JinjaError($"cannot compare {a.TypeName} with {b.TypeName}");
    }

    /// <summary>The globals every render starts with.</summary>
    public static void AddGlobals(Scope scope, DateTime now, JinjaLimits limits)
    {
        scope.Set("namespace", new JinjaFunction((args, _) => Namespace(args)));
        scope.Set("true", JinjaBool.True);
        scope.Set("false", JinjaBool.False);
        scope.Set("none", JinjaNull.Instance);
        scope.Set("True", JinjaBool.True);
        scope.Set("False", JinjaBool.False);
        scope.Set("None", JinjaNull.Instance);
        scope.Set("raise_exception", new JinjaFunction((args, _) =>
            throw new JinjaError($"raise_exception: {(args.Count > 0 ? JinjaInterpreter.RawString(args[0]) : "undefined")}")));
        scope.Set("range", new JinjaFunction((args, _) => Range(args, limits)));
        scope.Set("strftime_now", new JinjaFunction((args, _) =>
            new JinjaString(Strftime(now, args.FirstOrDefault() is JinjaString f ? f.Value : throw new JinjaError("strftime_now() takes a format string")))));
    }

    private static JinjaNamespace Namespace(List<JinjaValue> args)
    {
        var positional = new List<JinjaValue>(args);
        JinjaObject? kwargs = positional.Count > 0 && positional[^1] is JinjaObject { IsKeywordArguments: true } k ? k : null;
        if (kwargs is not null)
        {
            positional.RemoveAt(positional.Count - 1);
        }

        if (positional.Count > 1)
        {
            throw new JinjaError($"namespace expected at most 1 argument, got {positional.Count}");
        }

        var entries = new OrderedDictionary<string, JinjaValue>();
        switch (positional.FirstOrDefault())
        {
            case null:
                break;
            case JinjaObject o:
                foreach (var (key, value) in o.Entries)
                {
                    entries[key] = value;
                }

                break;
            case JinjaArray pairs:
                foreach (var pair in pairs.Items)
                {
                    if (pair is not JinjaArray { Items: [JinjaString key, var value] })
                    {
                        throw new JinjaError("namespace expected an object or an iterable of [key, value] pairs");
                    }

                    entries[key.Value] = value;
                }

                break;
            case var other:
                throw new JinjaError($"'{other.TypeName}' object is not iterable");
        }

        foreach (var (key, value) in kwargs?.Entries ?? [])
        {
            entries[key] = value;
        }

        return new JinjaNamespace(entries);
    }

    private static JinjaArray Range(List<JinjaValue> args, JinjaLimits limits)
    {
        if (args.Count is 0 or > 3 || args.Any(a => a is not JinjaNumber))
        {
            throw new JinjaError("range() takes 1 to 3 numbers");
        }

        var n = args.Select(a => ((JinjaNumber)a).Value).ToList();
        double start = n.Count == 1 ? 0 : n[0], stop = n.Count == 1 ? n[0] : n[1], step = n.Count == 3 ? n[2] : 1;
        if (step == 0)
        {
            throw new JinjaError("range() step must not be zero");
        }

        double count = Math.Max(0, Math.Ceiling((stop - start) / step));
        if (!double.IsFinite(start) || double.IsNaN(count) || count > limits.MaxLoopIterations)
        {
            throw new JinjaError($"range() of {count:N0} numbers exceeds the template's loop limit ({limits.MaxLoopIterations:N0})");
        }

        var items = new List<JinjaValue>((int)count);
        for (double i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            items.Add(JinjaNumber.FromDouble(i));
        }

        return new JinjaArray(items);
    }

    /// <summary>@huggingface/jinja's <c>strftime</c>: %Y %m %d %b %B %H %M %% (English month names); other codes stay.</summary>
    public static string Strftime(DateTime time, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length || "YmdbBHM%".IndexOf(format[i + 1], StringComparison.Ordinal) < 0)
            {
                sb.Append(format[i]);
                continue;
            }

            char code = format[++i];
            sb.Append(code switch
            {
                'Y' => time.Year.ToString(CultureInfo.InvariantCulture),
                'm' => time.Month.ToString("00", CultureInfo.InvariantCulture),
                'd' => time.Day.ToString("00", CultureInfo.InvariantCulture),
                'b' => time.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => time.ToString("MMMM", CultureInfo.InvariantCulture),
                'H' => time.Hour.ToString("00", CultureInfo.InvariantCulture),
                'M' => time.Minute.ToString("00", CultureInfo.InvariantCulture),
                _ => "%",
            });
        }

        return sb.ToString();
    }
}
