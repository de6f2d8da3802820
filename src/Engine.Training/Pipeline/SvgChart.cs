using System.Globalization;
using System.Net;
using System.Text;

namespace Engine.Training.Pipeline;

/// <summary>
/// A small SVG line-chart writer for the report: axes with "nice" ticks (1, 2, 5 × 10^k), axis labels, one polyline
/// per series and a legend. Output is well-formed XML usable inline in HTML; no scripts, no external references.
/// </summary>
public static class SvgChart
{
    /// <summary>Series colours, in order (colour-blind-friendly Okabe–Ito).</summary>
    public static IReadOnlyList<string> Palette { get; } = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];

    private static readonly double[] NiceSteps = [1.0, 2.0, 5.0, 10.0];

    private const double Left = 62, Right = 24, Bottom = 46;

    // The first legend row's baseline, the height of each further row, and the gap from the last row to the plot.
    private const double LegendY = 38, LegendRow = 14, LegendGap = 14;

    // Rough width of a legend character at 12px, to lay legend entries out without measuring text.
    private const double CharWidth = 6.6;

    /// <summary>A line chart of <paramref name="series"/> (steps on x) of the given pixel size.</summary>
    public static string Line(string title, string xLabel, string yLabel, IReadOnlyList<Curve> series, int width = 520, int height = 300)
    {
        ArgumentNullException.ThrowIfNull(series);
        var points = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Value)).ToList();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append(CultureInfo.InvariantCulture, $"<title>{Esc(title)}</title>");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2.0:0.#}\" y=\"18\" text-anchor=\"middle\" class=\"ct\">{Esc(title)}</text>");
        var names = series.Select(c => c.Name).ToList();
        double plotTop = PlotTop(names, width, 0);
        double plotW = width - Left - Right, plotH = height - plotTop - Bottom;
        if (points.Count == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{plotTop}\" width=\"{plotW}\" height=\"{plotH}\" fill=\"#f6f6f6\" stroke=\"#cccccc\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + plotW / 2:0.#}\" y=\"{plotTop + plotH / 2:0.#}\" text-anchor=\"middle\" class=\"nd\">no data</text>");
            return sb.Append("</svg>").ToString();
        }

        // Steps are whole numbers: no tick at step 2.5.
        var (x0, x1, xTicks) = Axis(points.Min(p => (double)p.Step), points.Max(p => (double)p.Step), 6, minStep: 1);
        var (y0, y1, yTicks) = Axis(points.Min(p => p.Value), points.Max(p => p.Value), 5);
        double X(double v) => Left + (v - x0) / (x1 - x0) * plotW;
        double Y(double v) => plotTop + plotH - (v - y0) / (y1 - y0) * plotH;

        // Grid and ticks first, so the lines are drawn over them.
        foreach (double t in yTicks)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Y(t):0.##}\" x2=\"{Left + plotW}\" y2=\"{Y(t):0.##}\" class=\"grid\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{Y(t) + 4:0.##}\" text-anchor=\"end\" class=\"tk\">{Tick(t)}</text>");
        }

        foreach (double t in xTicks)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(t):0.##}\" y1=\"{plotTop + plotH}\" x2=\"{X(t):0.##}\" y2=\"{plotTop + plotH + 5}\" class=\"axis\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(t):0.##}\" y=\"{plotTop + plotH + 18}\" text-anchor=\"middle\" class=\"tk\">{Tick(t)}</text>");
        }

        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{plotTop}\" x2=\"{Left}\" y2=\"{plotTop + plotH}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{plotTop + plotH}\" x2=\"{Left + plotW}\" y2=\"{plotTop + plotH}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + plotW / 2:0.#}\" y=\"{height - 8}\" text-anchor=\"middle\" class=\"al\">{Esc(xLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{plotTop + plotH / 2:0.#}\" text-anchor=\"middle\" class=\"al\" transform=\"rotate(-90 14 {plotTop + plotH / 2:0.#})\">{Esc(yLabel)}</text>");

        for (int s = 0; s < series.Count; s++)
        {
            string colour = Palette[s % Palette.Count];
            var pts = series[s].Points.Where(p => double.IsFinite(p.Value)).ToList();
            if (pts.Count == 1)
            {
                sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(pts[0].Step):0.##}\" cy=\"{Y(pts[0].Value):0.##}\" r=\"3\" fill=\"{colour}\"/>");
            }
            else if (pts.Count > 1)
            {
                sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"");
                sb.AppendJoin(" ", pts.Select(p => string.Create(CultureInfo.InvariantCulture, $"{X(p.Step):0.##},{Y(p.Value):0.##}")));
                sb.Append("\"/>");
            }
        }

        Legend(sb, names, width);
        return sb.Append("</svg>").ToString();
    }

    /// <summary>
    /// A grouped bar chart: one group per category, one bar per series; a null value leaves its bar out and
    /// writes "n/a" in its place, so a stage that was not measured is visibly so rather than drawn as zero.
    /// </summary>
    public static string Bars(string title, string yLabel, IReadOnlyList<string> categories, IReadOnlyList<(string Name, IReadOnlyList<double?> Values)> series, int width = 520, int height = 300)
    {
        ArgumentNullException.ThrowIfNull(categories);
        ArgumentNullException.ThrowIfNull(series);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append(CultureInfo.InvariantCulture, $"<title>{Esc(title)}</title>");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2.0:0.#}\" y=\"18\" text-anchor=\"middle\" class=\"ct\">{Esc(title)}</text>");
        var names = series.Select(s => s.Name).ToList();

        // Room above the tallest bar for its value label, so it does not run into the legend.
        double plotTop = PlotTop(names, width, LegendRow);
        double plotW = width - Left - Right, plotH = height - plotTop - Bottom;
        var values = series.SelectMany(s => s.Values).OfType<double>().Where(double.IsFinite).ToList();
        // Bars grow from zero, so zero is always on the axis.
        var (y0, y1, yTicks) = Axis(Math.Min(0, values.Count > 0 ? values.Min() : 0), Math.Max(0, values.Count > 0 ? values.Max() : 1), 5);
        double Y(double v) => plotTop + plotH - (v - y0) / (y1 - y0) * plotH;
        foreach (double t in yTicks)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Y(t):0.##}\" x2=\"{Left + plotW}\" y2=\"{Y(t):0.##}\" class=\"grid\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{Y(t) + 4:0.##}\" text-anchor=\"end\" class=\"tk\">{Tick(t)}</text>");
        }

        double group = plotW / Math.Max(1, categories.Count);
        double bar = group * 0.7 / Math.Max(1, series.Count);
        for (int c = 0; c < categories.Count; c++)
        {
            double gx = Left + c * group;
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{gx + group / 2:0.##}\" y=\"{plotTop + plotH + 18}\" text-anchor=\"middle\" class=\"al\">{Esc(categories[c])}</text>");
            for (int s = 0; s < series.Count; s++)
            {
                double x = gx + group * 0.15 + s * bar;
                double? v = c < series[s].Values.Count ? series[s].Values[c] : null;
                if (v is double value && double.IsFinite(value))
                {
                    double top = Y(Math.Max(0, value)), bottom = Y(Math.Min(0, value));
                    sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x:0.##}\" y=\"{top:0.##}\" width=\"{bar - 2:0.##}\" height=\"{Math.Max(0.5, bottom - top):0.##}\" fill=\"{Palette[s % Palette.Count]}\"/>");
                    double labelY = value >= 0 ? top - 4 : bottom + 12;
                    sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + bar / 2 - 1:0.##}\" y=\"{labelY:0.##}\" text-anchor=\"middle\" class=\"tk\">{value.ToString("0.00", CultureInfo.InvariantCulture)}</text>");
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + bar / 2 - 1:0.##}\" y=\"{Y(0) - 4:0.##}\" text-anchor=\"middle\" class=\"nd\">n/a</text>");
                }
            }
        }

        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{plotTop}\" x2=\"{Left}\" y2=\"{plotTop + plotH}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Y(0):0.##}\" x2=\"{Left + plotW}\" y2=\"{Y(0):0.##}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{plotTop + plotH / 2:0.#}\" text-anchor=\"middle\" class=\"al\" transform=\"rotate(-90 14 {plotTop + plotH / 2:0.#})\">{Esc(yLabel)}</text>");
        Legend(sb, names, width);
        return sb.Append("</svg>").ToString();
    }

    /// <summary>
    /// Axis bounds and ticks covering [<paramref name="min"/>, <paramref name="max"/>] with about
    /// <paramref name="targetTicks"/> ticks at multiples of 1, 2 or 5 × 10^k, and at least <paramref name="minStep"/>
    /// apart; a flat range is widened so it has height.
    /// </summary>
    public static (double Min, double Max, IReadOnlyList<double> Ticks) Axis(double min, double max, int targetTicks, double minStep = 0)
    {
        if (max - min < 1e-12 * Math.Max(1, Math.Abs(max)))
        {
            double pad = Math.Abs(max) > 0 ? Math.Abs(max) * 0.1 : 1;
            min -= pad;
            max += pad;
        }

        double raw = (max - min) / Math.Max(1, targetTicks);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = Math.Max(minStep, NiceSteps.Select(m => m * magnitude).First(s => s >= raw));
        double lo = Math.Floor(min / step) * step, hi = Math.Ceiling(max / step) * step;
        var ticks = new List<double>();
        for (int i = 0; lo + i * step <= hi + step * 1e-9; i++)
        {
            // Rounded to the step's precision so 0.30000000000000004 prints as 0.3.
            ticks.Add(Math.Round(lo + i * step, 12));
        }

        return (lo, hi, ticks);
    }

    /// <summary>Legend entries in rows under the title, above the plot, so they never cover a line.</summary>
    private static void Legend(StringBuilder sb, List<string> names, int width)
    {
        var at = LegendLayout(names, width);
        for (int s = 0; s < names.Count; s++)
        {
            var (x, y) = at[s];
            string colour = Palette[s % Palette.Count];
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x:0.#}\" y1=\"{y - 4}\" x2=\"{x + 18:0.#}\" y2=\"{y - 4}\" stroke=\"{colour}\" stroke-width=\"3\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + 24:0.#}\" y=\"{y}\" class=\"lg\">{Esc(names[s])}</text>");
        }
    }

    /// <summary>Where each legend entry goes: left to right, wrapping to a new row rather than running past the chart's edge.</summary>
    private static List<(double X, double Y)> LegendLayout(List<string> names, int width)
    {
        var at = new List<(double X, double Y)>(names.Count);
        double x = Left, y = LegendY;
        foreach (string name in names)
        {
            double entry = 26 + name.Length * CharWidth + 14;
            if (x + entry > width - Right && x > Left)
            {
                x = Left;
                y += LegendRow;
            }

            at.Add((x, y));
            x += entry;
        }

        return at;
    }

    /// <summary>The top of the plot area: below the last legend row (however many rows it wraps to) and <paramref name="extra"/> pixels more.</summary>
    private static double PlotTop(List<string> names, int width, double extra)
    {
        double lastRow = names.Count == 0 ? LegendY : LegendLayout(names, width)[^1].Y;
        return lastRow + LegendGap + extra;
    }

    private static string Tick(double v)
    {
        double a = Math.Abs(v);
        return a != 0 && (a >= 1e5 || a < 1e-3)
            ? v.ToString("0.##e0", CultureInfo.InvariantCulture)
            : v.ToString("0.####", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Text for HTML and XML: markup escaped, and control characters (other than tab and newline), which neither allows
    /// and which a barely trained model does sample, shown as their Unicode control pictures (U+0003 as ␃).
    /// </summary>
    internal static string Esc(string s) => WebUtility.HtmlEncode(string.Create(s.Length, s, static (span, text) =>
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            span[i] = c is '\n' or '\t' ? c : c < 0x20 ? (char)(0x2400 + c) : c == 0x7F ? '\u2421' : c;
        }
    }));
}
