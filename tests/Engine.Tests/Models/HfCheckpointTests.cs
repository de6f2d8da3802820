using System.Text.Json;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

[Trait("Category", "Formats")]
public sealed class HfCheckpointTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-hf-").FullName;
    private readonly CpuBackend backend = new(2);

    public static TheoryData<string> Fixtures => new(ModelFixture.Names);

    public void Dispose()
    {
        backend.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Save_then_load_is_bit_identical(string name)
    {
        var config = HfConfig.Parse(ModelFixture.Load(name).ConfigJson, name);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(seed: 7);
        string path = Path.Combine(dir, name);
        HfCheckpoint.Save(model, path);

        Assert.True(File.Exists(Path.Combine(path, "config.json")));
        Assert.True(File.Exists(Path.Combine(path, "model.safetensors")));
        using (var file = SafetensorsFile.Open(Path.Combine(path, "model.safetensors")))
        {
            Assert.Equal("pt", file.Metadata["format"]);
            Assert.Equal(config.TiedEmbeddings, !file.Contains("lm_head.weight"));
        }

        using var loaded = HfCheckpoint.Load(path, backend);
        Assert.Equal(config, loaded.Config);
        Assert.Equal(Values(model), Values(loaded));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void A_directory_exported_from_the_PyTorch_fixture_reproduces_its_logits(string name)
    {
        var f = ModelFixture.Load(name);
        string path = ExportFixture(f, (w, n, data, shape) => w.AddF32(n, data, shape));

        using var model = HfCheckpoint.Load(path, backend);
        AssertFixtureLogits(f, model);
    }

    [Fact]
    public void Gpt2_names_without_the_transformer_prefix_and_old_mask_buffers_load()
    {
        var f = ModelFixture.Load("gpt2_tiny");
        string path = ExportFixture(f, (w, n, data, shape) => w.AddF32(n.Replace("transformer.", "", StringComparison.Ordinal), data, shape));
        var writer = new SafetensorsWriter();
        using (var file = SafetensorsFile.Open(Path.Combine(path, "model.safetensors")))
        {
            foreach (var t in file.Tensors)
            {
                writer.AddF32(t.Name, file.ReadF32(t.Name), [.. t.Shape]);
            }
        }

        writer.AddF32("h.0.attn.bias", new float[16 * 16], 1, 1, 16, 16);
        writer.AddF32("h.1.attn.masked_bias", [-1e4f]);
        writer.Save(Path.Combine(path, "model.safetensors"));

        using var model = HfCheckpoint.Load(path, backend);
        AssertFixtureLogits(f, model);
    }

    [Theory]
    [InlineData("BF16")]
    [InlineData("F16")]
    public void Half_precision_weights_are_widened_exactly_on_load(string dtype)
    {
        var f = ModelFixture.Load("llama_tiny");
        string path = ExportFixture(f, (w, n, data, shape) =>
        {
            if (dtype == "BF16")
            {
                w.AddBf16(n, data, shape);
            }
            else
            {
                w.AddF16(n, data, shape);
            }
        });

        using var model = HfCheckpoint.Load(path, backend);
        foreach (string p in f.ParameterNames)
        {
            float[] expected = f.Floats[p].Select(x => dtype == "BF16" ? Bf16.ToSingle(Bf16.FromSingle(x)) : (float)(Half)x).ToArray();
            Assert.Equal(expected, model.ReadHuggingFaceTensor(p));
        }
    }

    [Fact]
    public void Bf16_save_round_trips_to_rounded_weights_and_writes_torch_dtype()
    {
        var config = HfConfig.Parse(ModelFixture.Load("llama_tied").ConfigJson);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(3);
        HfCheckpoint.Save(model, dir, new HfSaveOptions { DType = SafetensorsDType.BF16 });
        using var loaded = HfCheckpoint.Load(dir, backend);
        Assert.Equal(Values(model).Select(x => Bf16.ToSingle(Bf16.FromSingle(x))), Values(loaded));
        Assert.Equal("bfloat16", HfCheckpoint.ReadConfig(dir).TorchDtype);
    }

    [Fact]
    public void Sharded_save_writes_an_index_and_loads_bit_identically_and_a_later_single_save_replaces_it()
    {
        var config = HfConfig.Parse(ModelFixture.Load("llama_tiny").ConfigJson);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(11);
        HfCheckpoint.Save(model, dir, new HfSaveOptions { MaxShardBytes = 40_000 });

        string[] shards = [.. Directory.GetFiles(dir, "model-*-of-*.safetensors").Select(Path.GetFileName).Order()!];
        Assert.True(shards.Length > 2, $"{shards.Length} shards");
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        Assert.Equal($"model-00001-of-{shards.Length:D5}.safetensors", shards[0]);
        using (var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "model.safetensors.index.json"))))
        {
            var map = index.RootElement.GetProperty("weight_map");
            Assert.Equal(HfWeightMap.For(config).Count, map.EnumerateObject().Count());
            long total = index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64();
            Assert.Equal(model.Parameters.ElementCount * 4, total);
            Assert.All(map.EnumerateObject(), e => Assert.Contains(e.Value.GetString(), shards));
        }

        using (var loaded = HfCheckpoint.Load(dir, backend))
        {
            Assert.Equal(Values(model), Values(loaded));
        }

        HfCheckpoint.Save(model, dir);
        Assert.Empty(Directory.GetFiles(dir, "model-*"));
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        using var again = HfCheckpoint.Load(dir, backend);
        Assert.Equal(Values(model), Values(again));
    }

    [Fact]
    public void Config_writer_keeps_special_tokens_and_model_type_and_reads_back_equal()
    {
        var config = HfConfig.Parse(ModelFixture.Load("llama_tied").ConfigJson) with { HeadSize = 0 };
        var hf = new HfModelConfig(config, "mistral", "float32", 1, [2, 7]);
        string json = HfConfig.ToJson(hf);
        var back = HfConfig.Read(json);
        Assert.Equal(config, back.Model);
        Assert.Equal("mistral", back.ModelType);
        Assert.Equal(1, back.BosTokenId);
        Assert.Equal([2, 7], back.EosTokenIds);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("MistralForCausalLM", doc.RootElement.GetProperty("architectures")[0].GetString());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("sliding_window").ValueKind);
        Assert.Contains("\"rms_norm_eps\": 1E-06", json, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => HfConfig.ToJson(hf with { ModelType = "qwen2" }));
        Assert.Throws<ArgumentException>(() => HfConfig.ToJson(hf with { ModelType = "gpt2" }));
    }

    [Fact]
    public void Tokenizer_files_are_copied_when_given()
    {
        string tok = Path.Combine(dir, "tok");
        Directory.CreateDirectory(tok);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), "{}");
        File.WriteAllText(Path.Combine(tok, "tokenizer_config.json"), "{\"chat_template\": \"x\"}");
        File.WriteAllText(Path.Combine(tok, "unrelated.txt"), "no");
        using var model = new Transformer(HfConfig.Parse(ModelFixture.Load("gpt2_tiny").ConfigJson), backend);
        string output = Path.Combine(dir, "out");
        HfCheckpoint.Save(model, output, new HfSaveOptions { TokenizerDirectory = tok });
        Assert.Equal("{}", File.ReadAllText(Path.Combine(output, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer_config.json")));
        Assert.False(File.Exists(Path.Combine(output, "unrelated.txt")));
    }

    [Fact]
    public void Tied_head_stored_equal_to_the_embedding_is_accepted_and_a_different_one_is_refused()
    {
        var f = ModelFixture.Load("llama_tied");
        string path = ExportFixture(f, (w, n, data, shape) =>
        {
            w.AddF32(n, data, shape);
            if (n == "model.embed_tokens.weight")
            {
                w.AddF32("lm_head.weight", data, shape);
            }
        });
        using (var model = HfCheckpoint.Load(path, backend))
        {
            AssertFixtureLogits(f, model);
        }

        string bad = ExportFixture(f, (w, n, data, shape) =>
        {
            w.AddF32(n, data, shape);
            if (n == "model.embed_tokens.weight")
            {
                w.AddF32("lm_head.weight", data.Select(x => x + 1).ToArray(), shape);
            }
        }, "bad");
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(bad, backend));
        Assert.Contains("lm_head.weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("tie_word_embeddings", e.Message, StringComparison.Ordinal);
    }

    // ---- hostile directories: each fault gives one clear error ----

    [Fact]
    public void Missing_config_is_named()
    {
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(dir, backend));
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_weights_are_named()
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), ModelFixture.Load("gpt2_tiny").ConfigJson);
        File.WriteAllText(Path.Combine(dir, "pytorch_model.bin"), "pickle");
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(dir, backend));
        Assert.Contains("model.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains("pytorch_model.bin", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_tensor_names_the_tensor_the_file_and_the_shape()
    {
        var f = ModelFixture.Load("llama_tiny");
        string path = ExportFixture(f, (w, n, data, shape) =>
        {
            if (n != "model.layers.1.self_attn.k_proj.bias")
            {
                w.AddF32(n, data, shape);
            }
        });
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("'model.layers.1.self_attn.k_proj.bias' is missing", e.Message, StringComparison.Ordinal);
        Assert.Contains("model.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains("[16]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Misshaped_tensor_names_both_shapes()
    {
        var f = ModelFixture.Load("llama_tiny");
        string path = ExportFixture(f, (w, n, data, shape) =>
            w.AddF32(n, data, n == "model.layers.0.mlp.down_proj.weight" ? [shape[1], shape[0]] : shape));
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("'model.layers.0.mlp.down_proj.weight' has shape [80, 48], the config needs [48, 80]", e.Message, StringComparison.Ordinal);
        Assert.Contains("model.safetensors", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Integer_weight_is_refused_with_its_dtype()
    {
        var f = ModelFixture.Load("gpt2_tiny");
        string path = ExportFixture(f, (w, n, data, shape) =>
        {
            if (n == "transformer.ln_f.bias")
            {
                w.AddI32(n, new int[data.Length], shape);
            }
            else
            {
                w.AddF32(n, data, shape);
            }
        });
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("'transformer.ln_f.bias' is stored as I32", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void I64_weight_written_by_hand_is_refused()
    {
        var f = ModelFixture.Load("gpt2_tiny");
        string path = ExportFixture(f, (w, n, data, shape) => w.AddF32(n, data, shape));
        // The writer has no I64; patch the header's dtype of an 8-byte-per-element-compatible tensor instead.
        string file = Path.Combine(path, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToUInt64(bytes, 0));
        Assert.Contains("\"transformer.wte.weight\":{\"dtype\":\"F32\",\"shape\":[67,32]", header, StringComparison.Ordinal);
        string patched = header.Replace("\"transformer.wte.weight\":{\"dtype\":\"F32\",\"shape\":[67,32]", "\"transformer.wte.weight\":{\"dtype\":\"I64\",\"shape\":[67,16]", StringComparison.Ordinal);
        System.Text.Encoding.UTF8.GetBytes(patched).CopyTo(bytes, 8);
        File.WriteAllBytes(file, bytes);
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("'transformer.wte.weight' is stored as I64", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_tensors_are_refused_unless_allowed()
    {
        var f = ModelFixture.Load("llama_tied");
        string path = ExportFixture(f, (w, n, data, shape) =>
        {
            w.AddF32(n, data, shape);
            if (n == "model.norm.weight")
            {
                w.AddF32("model.layers.2.input_layernorm.weight", data, shape);
            }
        });
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("model.layers.2.input_layernorm.weight", e.Message, StringComparison.Ordinal);
        using var model = HfCheckpoint.Load(path, backend, options: new HfLoadOptions { IgnoreUnknownTensors = true });
        AssertFixtureLogits(f, model);
    }

    [Fact]
    public void Unknown_model_type_is_a_clear_error()
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"model_type\": \"bert\", \"vocab_size\": 10}");
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(dir, backend));
        Assert.Contains("field 'model_type': 'bert' is not supported", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mistyped_config_field_is_named()
    {
        string json = ModelFixture.Load("gpt2_tiny").ConfigJson.Replace("\"n_layer\": 2", "\"n_layer\": \"two\"", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(dir, "config.json"), json);
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(dir, backend));
        Assert.Contains("field 'n_layer': must be an integer, got \"two\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deeply_nested_config_is_refused()
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"model_type\": " + new string('[', 5000) + new string(']', 5000) + "}");
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(dir, backend));
        Assert.Contains("not valid JSON", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_shard_is_named()
    {
        string path = SaveSharded();
        string victim = Directory.GetFiles(path, "model-00002-*").Single();
        File.Delete(victim);
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains(Path.GetFileName(victim), e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/model.safetensors")]
    [InlineData("..")]
    public void Index_pointing_outside_the_directory_is_refused(string target)
    {
        string path = SaveSharded();
        File.Copy(Directory.GetFiles(path, "model-00001-*").Single(), Path.Combine(dir, "outside.safetensors"));
        RewriteIndex(path, map => map["model.embed_tokens.weight"] = target);
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("not a file name inside the checkpoint directory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tensor_in_two_shards_is_refused()
    {
        string path = SaveSharded();
        string first = Directory.GetFiles(path, "model-00001-*").Single(), second = Directory.GetFiles(path, "model-00002-*").Single();
        var writer = new SafetensorsWriter();
        using (var a = SafetensorsFile.Open(first))
        using (var b = SafetensorsFile.Open(second))
        {
            foreach (var t in b.Tensors)
            {
                writer.AddF32(t.Name, b.ReadF32(t.Name), [.. t.Shape]);
            }

            var dup = a.Tensors[0];
            writer.AddF32(dup.Name, a.ReadF32(dup.Name), [.. dup.Shape]);
        }

        writer.Save(second);
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("stored in two shards", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Index_listing_a_tensor_twice_or_in_the_wrong_shard_is_refused()
    {
        string path = SaveSharded();
        string index = Path.Combine(path, "model.safetensors.index.json");
        string text = File.ReadAllText(index);
        string first = Path.GetFileName(Directory.GetFiles(path, "model-00001-*").Single());
        File.WriteAllText(index, text.Replace("\"weight_map\": {", $"\"weight_map\": {{\n    \"model.norm.weight\": \"{first}\",", StringComparison.Ordinal));
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("'model.norm.weight' is listed twice", e.Message, StringComparison.Ordinal);

        File.WriteAllText(index, text);
        string last = Path.GetFileName(Directory.GetFiles(path, "model-*").Max()!);
        RewriteIndex(path, map => map["model.embed_tokens.weight"] = last);
        e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("model.embed_tokens.weight", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Index_without_weight_map_is_refused()
    {
        string path = SaveSharded();
        File.WriteAllText(Path.Combine(path, "model.safetensors.index.json"), "{\"metadata\": {}}");
        var e = Assert.ThrowsAny<InputException>(() => HfCheckpoint.Load(path, backend));
        Assert.Contains("weight_map", e.Message, StringComparison.Ordinal);
    }

    private string SaveSharded()
    {
        var config = HfConfig.Parse(ModelFixture.Load("llama_tiny").ConfigJson);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(5);
        string path = Path.Combine(dir, "sharded");
        HfCheckpoint.Save(model, path, new HfSaveOptions { MaxShardBytes = 60_000 });
        Assert.True(Directory.GetFiles(path, "model-*").Length >= 3);
        return path;
    }

    private static void RewriteIndex(string path, Action<Dictionary<string, string>> edit)
    {
        string index = Path.Combine(path, "model.safetensors.index.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(index));
        var map = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        edit(map);
        File.WriteAllText(index, JsonSerializer.Serialize(new { metadata = new { total_size = 1 }, weight_map = map }));
    }

    private string ExportFixture(ModelFixture f, Action<SafetensorsWriter, string, float[], long[]> add, string sub = "export")
    {
        string path = Path.Combine(dir, sub);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "config.json"), f.ConfigJson);
        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = "pt";
        foreach (string p in f.ParameterNames)
        {
            add(writer, p, f.Floats[p], f.Shapes[p]);
        }

        writer.Save(Path.Combine(path, "model.safetensors"));
        return path;
    }

    private static void AssertFixtureLogits(ModelFixture f, Transformer model)
    {
        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var logits = new float[f.Floats["logits"].Length];
        model.ForwardLogits(f.Ints["input_ids"], b, t, logits);
        Approx.Equal(f.Floats["logits"], logits, atol: 2e-5f, rtol: 1e-4f, what: $"{f.Name} logits");
    }

    private float[] Values(Transformer model)
    {
        var host = new float[model.Parameters.ElementCount];
        backend.CopyToHost<float>(model.Parameters.Values, host);
        return host;
    }
}
