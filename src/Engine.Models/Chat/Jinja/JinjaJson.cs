using System.Globalization;
using System.Text;

namespace Engine.Models.Chat.Jinja;

/// <summary>
/// The <c>tojson</c> filter as <c>@huggingface/jinja</c> writes it (Python's <c>json.dumps</c> layout): separators
/// <c>", "</c> and <c>": "</c> (<c>","</c> between items when indenting), non-ASCII kept unless <c>ensure_ascii</c>,
/// keys in insertion order unless <c>sort_keys</c>.
/// </summary>
internal static class JinjaJson
{
    public sealed record Options(int? Indent = null, bool EnsureAscii = false, (string Item, string Key)? Separators = null, bool SortKeys = false);

    public static string Serialize(JinjaValue value, Options options, bool undefinedAsNull = true)
    {
        var sb = new StringBuilder();
        Write(sb, value, options, 0, undefinedAsNull);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JinjaValue value, Options options, int depth, bool undefinedAsNull)
    {
        if (depth > 512)
        {
            throw new JinjaError("tojson: the value nests deeper than 512 levels");
        }

        var (item, key) = options.Separators ?? (options.Indent is > 0 ? (",", ": ") : (", ", ": "));
        string indent = options.Indent is > 0 and var n ? new string(' ', n) : "";
        switch (value)
        {
            case JinjaNull:
                sb.Append("null");
                return;
            case JinjaUndefined:
                sb.Append(undefinedAsNull ? "null" : "undefined");
                return;
            case JinjaBool b:
                sb.Append(b.Value ? "true" : "false");
                return;
            case JinjaNumber num:
                sb.Append(double.IsFinite(num.Value) ? JinjaNumber.JsNumber(num.Value) : "null");
                return;
            case JinjaString s:
                WriteString(sb, s.Value, options.EnsureAscii);
                return;
            case JinjaArray a:
            {
                sb.Append('[');
                for (int i = 0; i < a.Items.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(item);
                    }

                    NewLine(sb, indent, depth + 1);
                    Write(sb, a.Items[i], options, depth + 1, undefinedAsNull);
                }

                if (a.Items.Count > 0)
                {
                    NewLine(sb, indent, depth);
                }

                sb.Append(']');
                return;
            }

            case JinjaObject or JinjaNamespace:
            {
                var entries = (value is JinjaObject o ? o.Entries : ((JinjaNamespace)value).Entries).ToList();
                if (options.SortKeys)
                {
                    entries.Sort((x, y) => CultureInfo.InvariantCulture.CompareInfo.Compare(x.Key, y.Key, CompareOptions.None));
                }

                sb.Append('{');
                for (int i = 0; i < entries.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(item);
                    }

                    NewLine(sb, indent, depth + 1);
                    WriteString(sb, entries[i].Key, options.EnsureAscii);
                    sb.Append(key);
                    Write(sb, entries[i].Value, options, depth + 1, undefinedAsNull);
                }

                if (entries.Count > 0)
                {
                    NewLine(sb, indent, depth);
                }

                sb.Append('}');
                return;
            }

            default:
                throw new JinjaError($"cannot convert {value.TypeName} to JSON");
        }
    }

    private static void NewLine(StringBuilder sb, string indent, int depth)
    {
        if (indent.Length > 0)
        {
            sb.Append('\n');
            for (int i = 0; i < depth; i++)
            {
                sb.Append(indent);
            }
        }
    }

    /// <summary>JavaScript's <c>JSON.stringify</c> of a string, then non-ASCII (from U+007F) as <c>\uXXXX</c> when asked.</summary>
    private static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                case '\b':
                    sb.Append("\\b");
                    break;
                case '\f':
                    sb.Append("\\f");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                default:
                    bool lone = char.IsHighSurrogate(c) ? i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])
                        : char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(s[i - 1]));
                    if (c < ' ' || lone || (ensureAscii && c >= '\u007f'))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
