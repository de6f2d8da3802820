using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Core;
using Engine.Models.Chat;

namespace Engine.Models.HuggingFace;

/// <summary>Chat templates stored with a checkpoint.</summary>
public static partial class HfCheckpoint
{
    /// <summary>The tokenizer settings file that carries the <c>chat_template</c> field.</summary>
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>
    /// Stores <paramref name="template"/> in <paramref name="directory"/>: the <c>chat_template</c> field of
    /// tokenizer_config.json (created when absent, its other fields kept), and chat_template.jinja too when the directory
    /// has one (it takes precedence over the field in <c>transformers</c> and in <see cref="ChatTemplate.FromTokenizerDirectory"/>).
    /// </summary>
    /// <exception cref="InputException">An existing tokenizer_config.json is not a JSON object.</exception>
    public static void SaveChatTemplate(string directory, ChatTemplate template)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(template);
        string path = Path.Combine(directory, TokenizerConfigFile);
        JsonObject config;
        if (File.Exists(path))
        {
            try
            {
                config = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                    ?? throw new InputException(path, null, null, "expected a JSON object");
            }
            catch (JsonException e)
            {
                throw new InputException(path, e.LineNumber + 1, null, $"not valid JSON: {e.Message}", e);
            }
        }
        else
        {
            config = [];
        }

        config["chat_template"] = template.Jinja;
        WriteAtomically(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
        string jinja = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(jinja))
        {
            WriteAtomically(jinja, template.Jinja);
        }
    }
}
