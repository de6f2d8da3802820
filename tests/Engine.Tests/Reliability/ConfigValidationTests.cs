using System.Text.Json.Nodes;
using Engine.Core;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// Every size and number of config.json is checked when it is read (positive, divisible where the math needs it, within
/// the limits of <see cref="TransformerConfig"/>, finite and positive in fp32), with an error naming the file and the field.
/// </summary>
public sealed class ConfigValidationTests
{
    [Theory]
    [InlineData("gpt2_tiny", "vocab_size", "0")]
    [InlineData("gpt2_tiny", "vocab_size", "47000000")]
    [InlineData("gpt2_tiny", "n_layer", "1000000000")]
    [InlineData("gpt2_tiny", "n_layer", "-2")]
    [InlineData("gpt2_tiny", "n_embd", "0")]
    [InlineData("gpt2_tiny", "n_embd", "100000")]
    [InlineData("gpt2_tiny", "n_head", "-3")]
    [InlineData("gpt2_tiny", "n_head", "5")]
    [InlineData("gpt2_tiny", "n_positions", "-48")]
    [InlineData("gpt2_tiny", "n_positions", "2000000000")]
    [InlineData("gpt2_tiny", "n_inner", "-1")]
    [InlineData("gpt2_tiny", "n_inner", "0")]
    [InlineData("gpt2_tiny", "layer_norm_epsilon", "1e300")]
    [InlineData("gpt2_tiny", "layer_norm_epsilon", "1e-50")]
    [InlineData("gpt2_tiny", "layer_norm_epsilon", "-1e-5")]
    [InlineData("gpt2_tiny", "eos_token_id", "1000000")]
    [InlineData("gpt2_tiny", "bos_token_id", "-1")]
    [InlineData("llama_tiny", "num_key_value_heads", "5")]
    [InlineData("llama_tiny", "num_key_value_heads", "0")]
    [InlineData("llama_tiny", "intermediate_size", "0")]
    [InlineData("llama_tiny", "intermediate_size", "2000000")]
    [InlineData("llama_tiny", "hidden_size", "65537")]
    [InlineData("llama_tiny", "max_position_embeddings", "4194305")]
    [InlineData("llama_tiny", "head_dim", "3")]
    [InlineData("llama_tiny", "head_dim", "0")]
    [InlineData("llama_tiny", "rms_norm_eps", "1e400")]
    [InlineData("llama_tiny", "rope_theta", "1e400")]
    [InlineData("llama_tiny", "rope_theta", "1e39")]
    [InlineData("llama_tiny", "rope_theta", "0")]
    [InlineData("llama_tiny", "rope_theta", "-10000")]
    [InlineData("llama_tiny", "model_type", "\"bert\"")]
    public void A_bad_field_is_named_with_the_file(string fixture, string field, string value)
    {
        var node = JsonNode.Parse(ModelFixture.Load(fixture).ConfigJson)!.AsObject();
        node[field] = JsonNode.Parse(value);
        string json = node.ToJsonString().Replace("1E+400", "1e400", StringComparison.Ordinal);
        var e = Assert.Throws<InputException>(() => HfConfig.Read(json, "ckpt/config.json"));
        Assert.Equal(field, e.Field);
        Assert.Equal("ckpt/config.json", e.File);
        Assert.StartsWith($"ckpt/config.json: field '{field}': ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Values_out_of_double_range_are_refused_as_written()
    {
        var node = JsonNode.Parse(ModelFixture.Load("llama_tiny").ConfigJson)!.AsObject();
        node.Remove("rms_norm_eps");
        string json = node.ToJsonString().TrimEnd('}') + ", \"rms_norm_eps\": 1e400}";
        var e = Assert.Throws<InputException>(() => HfConfig.Read(json));
        Assert.Equal("rms_norm_eps", e.Field);
        Assert.Contains("1e400", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_largest_real_shapes_are_accepted()
    {
        // Llama 3.1 405B: V 128 256, L 126, C 16 384, NH 128, NKV 8, F 53 248, 131 072 positions.
        var config = TransformerConfig.Llama(128_256, 131_072, 126, 16_384, 128, 8, 53_248);
        Assert.Null(config.Fault(n => n));
        Assert.Equal(config, HfConfig.Parse(HfConfig.ToJson(config)));
    }

    [Fact]
    public void Limits_are_checked_in_long_arithmetic()
    {
        // V·C = 2^24 · 2^16 overflows an int; the check must see it, not a negative product.
        var config = TransformerConfig.Gpt2(TransformerConfig.MaxVocabSize, 8, 1, TransformerConfig.MaxChannels, 64);
        var fault = config.Fault(n => n);
        Assert.NotNull(fault);
        Assert.Equal("VocabSize", fault.Value.Field);
        Assert.Contains("over the limit", fault.Value.Detail, StringComparison.Ordinal);
    }
}
