using System.ComponentModel;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace Engine.Training.Options;

/// <summary>One key an options record accepts, with its default and meaning (from the property's <see cref="DescriptionAttribute"/>).</summary>
/// <param name="Key">The snake_case key, dotted for nested records (<c>optimizer.beta2</c>).</param>
/// <param name="Default">The default as a configuration file spells it (<c>2E-05</c>, <c>linear</c>, <c>true</c>, <c>null</c>).</param>
/// <param name="Description">One line of meaning.</param>
public sealed record OptionKey(string Key, string Default, string Description);

/// <summary>The keys of an options record with their defaults and meanings, for <c>--help</c>.</summary>
public static partial class OptionsReader
{
    /// <summary>
    /// Every key <paramref name="defaults"/>' record accepts (as <see cref="Keys{T}"/> lists them), with its value in
    /// <paramref name="defaults"/> and the <see cref="DescriptionAttribute"/> of its property.
    /// </summary>
    /// <exception cref="InvalidOperationException">A property has no description (every option must say what it does).</exception>
    public static IReadOnlyList<OptionKey> Describe(object defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var keys = new List<OptionKey>();
        DescribeInto(keys, defaults, "");
        return keys;
    }

    /// <summary>The keys of <paramref name="defaults"/> as aligned lines, <c>key  default  meaning</c>, under a heading.</summary>
    public static string HelpText(object defaults)
    {
        var keys = Describe(defaults);
        int keyWidth = keys.Max(k => k.Key.Length);
        int valueWidth = keys.Max(k => k.Default.Length);
        var sb = new StringBuilder("Trainer keys (--set key=value, or a --config JSON/YAML file; defaults shown):");
        foreach (var k in keys)
        {
            sb.Append('\n').Append("  ").Append(k.Key.PadRight(keyWidth)).Append("  ").Append(k.Default.PadRight(valueWidth)).Append("  ").Append(k.Description);
        }

        return sb.ToString();
    }

    private static void DescribeInto(List<OptionKey> keys, object target, string prefix)
    {
        foreach (var p in Settable(target.GetType()))
        {
            string key = prefix + SnakeCase(p.Name);
            object? value = p.GetValue(target);
            if (IsNested(p.PropertyType))
            {
                DescribeInto(keys, value ?? Activator.CreateInstance(p.PropertyType)!, key + ".");
                continue;
            }

            string description = p.GetCustomAttribute<DescriptionAttribute>()?.Description
                ?? throw new InvalidOperationException($"{p.DeclaringType?.Name}.{p.Name} has no [Description]; every option key needs one for --help");
            keys.Add(new OptionKey(key, FormatValue(value, p.PropertyType), description));
        }
    }

    // The value as the reader accepts it back: enums by their snake_case name, strings bare, numbers as JSON writes them.
    private static string FormatValue(object? value, Type type) => value switch
    {
        null => "null",
        string s => s,
        Enum e => SnakeCase(e.ToString()),
        _ => JsonSerializer.Serialize(value, Nullable.GetUnderlyingType(type) ?? type, JsonOptions),
    };
}
