using Engine.Models.Chat;
using Engine.Models.Chat.Jinja;
using Xunit;

namespace Engine.Tests.Chat.Jinja;

/// <summary>The interpreter's language, one feature at a time, with the outputs <c>@huggingface/jinja</c> gives.</summary>
public sealed class JinjaInterpreterTests
{
    private static string Render(string template, IReadOnlyDictionary<string, object?>? variables = null) =>
        JinjaTemplate.Parse(template, "t.jinja").Render(variables ?? new Dictionary<string, object?>(), new DateTime(2024, 7, 26, 9, 5, 0)).Text;

    private static readonly Dictionary<string, object?> Chat = new()
    {
        ["messages"] = new[] { new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello!") },
    };

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ 7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 3 }} {{ -7 // 2 }}", "3 1 3.5 8 -4")]
    [InlineData("{{ 1.0 }} {{ 1.5 + 1 }} {{ 3 * 1.0 }} {{ 1.0 ~ '' }}", "1.0 2.5 3.0 1")]
    [InlineData("{{ 'a' ~ 1 ~ true }}", "a1true")]
    [InlineData("{{ 'a' + 'b' }}{{ 'x' ~ undefined_thing }}", "abx")]
    [InlineData("{{ true }} {{ none }} {{ [1, 'a', none] }} {{ {'k': [1, 2]} }}", "true  [1, \"a\", null] {\"k\": [1, 2]}")]
    [InlineData("{{ 'yes' if 1 > 2 else 'no' }} {{ 'b' in 'abc' }} {{ 'z' not in ['a'] }} {{ 'k' in {'k': 1} }}", "no true true true")]
    [InlineData("{{ not 0 and 'x' or 'y' }} {{ [] or 'empty' }} {{ 'a' and 'b' }}", "x empty b")]
    [InlineData("{{ 1 == 1.0 }} {{ '1' == 1 }} {{ none == undefined_thing }} {{ [1] == [1] }}", "true true true false")]
    [InlineData("{{ 'hello'[1:3] }}{{ 'hello'[::-1] }}{{ [1, 2, 3, 4][-2:] }}{{ [1, 2, 3, 4][::2] }}{{ 'abc'[-1] }}", "elolleh[3, 4][1, 3]c")]
    [InlineData("{{ 'a' 'b' }}{{ \"\\n\\t\\u00e9\\x41\" }}", "ab\n\téA")]
    public void Expressions(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ '  x  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}", "x|AB|ab|Hello World|HELLO")]
    [InlineData("{{ [1, 2, 3] | length }} {{ 'abc' | length }} {{ {'a': 1} | length }} {{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}", "3 3 1 32")]
    [InlineData("{{ ['a', 'b'] | join(', ') }} {{ [1, 2] | join }} {{ 'abc' | join('-') }}", "a, b 12 a-b-c")]
    [InlineData("{{ 'a-b-a' | replace('a', 'x') }} {{ 'aaa' | replace('a', 'b', 2) }}", "x-b-x bba")]
    [InlineData("{{ undefined_thing | default('d') }} {{ '' | default('d', true) }} {{ 'v' | default('d') }}", "d d v")]
    [InlineData("{{ '42' | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3.9 | int }} {{ 2 | string }} {{ true | int }}", "42 0 2.5 3 2 1")]
    [InlineData("{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2] | reverse }} {{ [1, 1, 2] | unique }} {{ [1] | list }}", "[1, 2, 3] [\"A\", \"b\", \"c\"] [2, 1] [1, 2] [1]")]
    [InlineData("{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}={{ v }};{% endfor %}", "b=1;a=2;")]
    [InlineData("{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}", "a\n    b\n\n    c|  a\n  b")]
    [InlineData("{{ '<b>' | safe }}", "<b>")]
    public void Filters(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void Attribute_filters_select_reject_and_map()
    {
        var data = new Dictionary<string, object?>
        {
            ["messages"] = new[] { new ChatMessage("user", "a"), new ChatMessage("assistant", "b"), new ChatMessage("user", "c") },
        };
        Assert.Equal(
            "2 1 [\"user\", \"assistant\", \"user\"] ac",
            Render("{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | list | length }} {{ messages | map(attribute='role') | list }} {% for m in messages | selectattr('role', 'eq', 'user') %}{{ m.content }}{% endfor %}", data));
    }

    [Fact]
    public void Tojson_follows_python_json_dumps_layout_without_ascii_escaping()
    {
        var data = new Dictionary<string, object?> { ["v"] = System.Text.Json.JsonDocument.Parse("""{"b": [1, 2.5, "é😀\u0001"], "a": {"x": null, "y": true}, "e": []}""").RootElement };
        Assert.Equal("""{"b": [1, 2.5, "é😀\u0001"], "a": {"x": null, "y": true}, "e": []}""", Render("{{ v | tojson }}", data));
        Assert.Equal("{\n  \"b\": [\n    1,\n    2.5,\n    \"é😀\\u0001\"\n  ],\n  \"a\": {\n    \"x\": null,\n    \"y\": true\n  },\n  \"e\": []\n}", Render("{{ v | tojson(indent=2) }}", data));
        Assert.Equal("""{"a": {"x": null, "y": true}, "b": [1, 2.5, "\u00e9\ud83d\ude00\u0001"], "e": []}""", Render("{{ v | tojson(sort_keys=true, ensure_ascii=true) }}", data));
        Assert.Equal("""{"b":[1,2.5,"é😀\u0001"],"a":{"x":null,"y":true},"e":[]}""", Render("{{ v | tojson(separators=(',', ':')) }}", data));
    }

    [Theory]
    [InlineData("{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is integer }}", "true true true true true false")]
    [InlineData("{{ {} is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ {} is sequence }} {{ true is boolean }} {{ false is false }} {{ 1 is true }}", "true true true true true true false")]
    [InlineData("{{ 3 is odd }} {{ 4 is even }} {{ x is not none }} {{ 'ab' is lower }}", "true true true true")]
    public void Tests(string template, string expected) => Assert.Equal(expected, Render(template, new Dictionary<string, object?> { ["x"] = 1 }));

    [Theory]
    [InlineData("{{ ' a b '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}", "a b|[\"a\", \"b\", \"\", \"c\"]|[\"a\", \"b\"]|[\"a\", \"b c\"]")]
    [InlineData("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'a b'.title() }}{{ 'xax'.replace('x', '') }}", "true true a | a|ABabA Ba")]
    [InlineData("{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }}{{ d.get('z', 9) }}{{ d.get('z') }}{{ d.keys() }}{{ d.values() }}{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", "19[\"a\", \"b\"][1, 2]a1b2")]
    public void Methods(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void Loop_variables_else_break_continue_and_filtered_loops()
    {
        Assert.Equal(
            "1/0/3/2/T/F/3/-|2/1/2/1/F/F/3/1|3/2/1/0/F/T/3/2|",
            Render("{% for x in [1, 2, 3] %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ 'T' if loop.first else 'F' }}/{{ 'T' if loop.last else 'F' }}/{{ loop.length }}/{{ loop.previtem if loop.previtem is defined else '-' }}|{% endfor %}"));
        Assert.Equal("empty", Render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("13", Render("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}"));
        Assert.Equal("1", Render("{% for x in [1, 2, 3] %}{{ x }}{% if x == 2 %}{% break %}{% endif %}{% endfor %}"));
        Assert.Equal("2:1;3:2;", Render("{% for x in [1, 2, 3] if x > 1 %}{{ x }}:{{ loop.index }};{% endfor %}"));
        Assert.Equal("user-system", Render("{% for m in messages[::-1] if m.role != 'assistant' %}{{ m.role }}{{ '-' if not loop.last }}{% endfor %}", Chat));
    }

    [Fact]
    public void Set_scoping_and_namespace()
    {
        Assert.Equal("0", Render("{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}{% endfor %}{{ n }}"));
        Assert.Equal("3", Render("{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"));
        Assert.Equal("[a][b]", Render("{% set a, b = 'a', 'b' %}{% set block %}[{{ a }}][{{ b }}]{% endset %}{{ block }}"));
        Assert.Equal("Be brief.|Hi", Render("{% set ns = namespace(system=none) %}{% if messages[0].role == 'system' %}{% set ns.system = messages[0]['content'] %}{% set messages = messages[1:] %}{% endif %}{{ ns.system }}|{{ messages[0].content }}", Chat));
    }

    [Fact]
    public void Macros_call_blocks_and_filter_blocks()
    {
        Assert.Equal("<a>, <b>!", Render("{% macro tag(x, end='') %}<{{ x }}>{{ end }}{% endmacro %}{{ tag('a') }}, {{ tag('b', end='!') }}"));
        Assert.Equal("[inner:1]", Render("{% macro wrap() %}[{{ caller(1) }}]{% endmacro %}{% call(n) wrap() %}inner:{{ n }}{% endcall %}"));
        Assert.Equal("3 2", Render("{% macro f() %}{{ varargs | length }} {{ kwargs | length }}{% endmacro %}{{ f(1, 2, 3, a=1, b=2) }}"));
        Assert.Equal("HELLO", Render("{% filter upper %}hello{% endfilter %}"));
        Assert.Equal("6", Render("{% macro fact(n) %}{% if n > 1 %}{{ n * fact(n - 1) | int }}{% else %}1{% endif %}{% endmacro %}{{ fact(3) }}"));
    }

    [Fact]
    public void Whitespace_control_follows_hf_trim_blocks_and_lstrip_blocks()
    {
        Assert.Equal("a\nb", Render("{% if true %}\na\n{% endif %}\nb"));
        Assert.Equal("    ab", Render("{% if true %}\n    a\n    {%- endif %}\nb"));
        Assert.Equal("x y", Render("x  {{- ' ' -}}  y"));
        Assert.Equal("ab", Render("a {#- a comment -#}\n b"));
        Assert.Equal("a\n", Render("a\n\n"));
        Assert.Equal("  x", Render("  {{ 'x' }}"));
        Assert.Equal("1,2,", Render("{% for x in [1, 2] %}\n    {{ x }},\n{%- endfor %}").Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal));
    }

    [Fact]
    public void Globals_range_raise_exception_and_strftime_now()
    {
        Assert.Equal("[0, 1, 2] [2, 4] [3, 2]", Render("{{ range(3) | list }} {{ range(2, 6, 2) | list }} {{ range(3, 1, -1) | list }}"));
        Assert.Equal("26 Jul 2024 2024-07-26 09:05 July %x", Render("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }} {{ strftime_now('%B %x') }}"));
        Assert.Equal("true true none", Render("{{ True }} {{ true ~ '' | capitalize }} {{ 'none' if None is none }}"));
        var e = Assert.Throws<JinjaException>(() => Render("line one\n  {{ raise_exception('Roles must alternate') }}"));
        Assert.Equal("t.jinja: line 2, column 6: raise_exception: Roles must alternate", e.Message);
        Assert.Equal(2, e.TemplateLine);
    }

    [Theory]
    [InlineData("{% if x %}", 1, 1, "'if' is never closed")]
    [InlineData("a\n{{ x | }}", 2, 8, "unexpected '}}'")]
    [InlineData("{% for x in y %}{% endif %}", 1, 20, "unknown statement 'endif'")]
    [InlineData("\n\n  {{ 'unterminated }}", 3, 6, "unterminated string literal")]
    [InlineData("{% frobnicate %}", 1, 4, "unknown statement 'frobnicate'")]
    [InlineData("{{ a ? b }}", 1, 6, "unexpected character '?'")]
    public void Syntax_errors_name_the_line_and_column(string template, int line, int column, string detail)
    {
        var e = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse(template, "dir/chat_template.jinja"));
        Assert.StartsWith("dir/chat_template.jinja: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(detail, e.TemplateDetail, StringComparison.Ordinal);
        Assert.Equal((line, column), (e.TemplateLine, e.TemplateColumn));
    }

    [Theory]
    [InlineData("{{ 1 + none }}", "cannot perform operation + on null values")]
    [InlineData("{{ 'a' - 1 }}", "unknown operator \"-\" between StringValue and IntegerValue")]
    [InlineData("{{ [1] | upper }}", "unknown filter 'upper' for an array")]
    [InlineData("{{ x is frobbed }}", "unknown test 'frobbed'")]
    [InlineData("{% for c in 'abc' %}{% endfor %}", "expected an array or object to loop over, got StringValue")]
    [InlineData("{{ nothing() }}", "cannot call something that is not a function: got UndefinedValue")]
    [InlineData("{% set x.y = 1 %}", "cannot assign an attribute of something that is not a namespace()")]
    public void Runtime_errors_are_input_errors(string template, string detail)
    {
        var e = Assert.Throws<JinjaException>(() => Render(template));
        Assert.Equal(detail, e.TemplateDetail);
        Assert.IsAssignableFrom<Engine.Core.InputException>(e);
    }

    [Fact]
    public void Limits_stop_templates_that_would_run_unbounded()
    {
        var small = new JinjaLimits { MaxLoopIterations = 1000, MaxOutputChars = 10_000, MaxDepth = 16 };
        string Run(string t) => JinjaTemplate.Parse(t, "t", small).Render(new Dictionary<string, object?>()).Text;

        Assert.Contains("loop limit", Assert.Throws<JinjaException>(() => Run("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}")).Message, StringComparison.Ordinal);
        Assert.Contains("loop limit", Assert.Throws<JinjaException>(() => Run("{{ range(1000000000) }}")).Message, StringComparison.Ordinal);
        Assert.Contains("output limit", Assert.Throws<JinjaException>(() => Run("{% for i in range(999) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}")).Message, StringComparison.Ordinal);
        Assert.Contains("output limit", Assert.Throws<JinjaException>(() => Run("{% set ns = namespace(s='xx') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")).Message, StringComparison.Ordinal);
        Assert.Contains("recursion limit", Assert.Throws<JinjaException>(() => Run("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")).Message, StringComparison.Ordinal);
        Assert.Contains("nest deeper", Assert.Throws<JinjaException>(() => Run("{{ " + new string('(', 100) + "1" + new string(')', 100) + " }}")).Message, StringComparison.Ordinal);
        Assert.Contains("nest deeper", Assert.Throws<JinjaException>(() => Run(string.Concat(Enumerable.Repeat("{% if true %}", 100)))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generation_blocks_are_removed_from_the_output_and_their_spans_recorded()
    {
        var t = JinjaTemplate.Parse(
            "{% for m in messages %}<{{ m.role }}>\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}",
            "g");
        Assert.True(t.HasGenerationBlocks);
        var r = t.Render(Chat);
        Assert.Equal("<system>\nBe brief.<user>\nHi<assistant>\nHello!</s>", r.Text);
        Assert.Equal(["Hello!</s>"], r.GenerationSpans.Select(s => s.Of(r.Text)));
        Assert.Equal("ab", JinjaTemplate.Parse("a  {%- generation -%}  b{% endgeneration %}", "g").Render(new Dictionary<string, object?>()).Text);
    }
}
