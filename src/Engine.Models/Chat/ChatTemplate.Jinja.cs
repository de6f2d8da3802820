using System.Text;

namespace Engine.Models.Chat;

/// <summary>The writing side of chat templates: the Jinja text a checkpoint's tokenizer_config.json carries.</summary>
public sealed partial class ChatTemplate
{
    /// <summary>
    /// The Jinja <c>chat_template</c> that renders what <see cref="Render(IReadOnlyList{ChatMessage}, bool)"/> renders (in <c>transformers</c>'
    /// <c>apply_chat_template</c>) and that <see cref="Detect"/> recognises as this template, default system turn included;
    /// an interpreted template's own text.
    /// </summary>
    public string Jinja => Kind switch
    {
        ChatTemplateKind.Jinja => program!.Source,
        ChatTemplateKind.ChatMl =>
            (DefaultSystemPrompt is null
                ? ""
                : "{% if messages | length == 0 or messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n" + EscapeJinja(DefaultSystemPrompt) + "<|im_end|>\\n' }}{% endif %}")
            + "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ChatTemplateKind.Llama3 =>
            "{{ '<|begin_of_text|>' }}{% for message in messages %}"
            + "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        _ =>
            "{% for message in messages %}{% if not loop.first %}{{ '\\n\\n' }}{% endif %}"
            + "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] }}"
            + "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] }}"
            + "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{% if messages | length > 0 %}{{ '\\n\\n' }}{% endif %}{{ '### Response:\\n' }}{% endif %}",
    };

    /// <summary>Whether <paramref name="other"/> renders the same text: the same format and the same default system turn (or template text).</summary>
    public bool SameAs(ChatTemplate? other) =>
        other is not null && other.Kind == Kind && string.Equals(other.DefaultSystemPrompt, DefaultSystemPrompt, StringComparison.Ordinal)
        && string.Equals(other.program?.Source, program?.Source, StringComparison.Ordinal);

    /// <summary>A Python/Jinja single-quoted string literal's body (the inverse of <see cref="UnescapeJinja"/>).</summary>
    private static string EscapeJinja(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            sb.Append(c switch { '\\' => "\\\\", '\'' => "\\'", '\n' => "\\n", _ => c.ToString() });
        }

        return sb.ToString();
    }
}
