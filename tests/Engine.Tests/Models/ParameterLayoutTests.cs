using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Parameters;
using Xunit;

namespace Engine.Tests.Models;

public class ParameterLayoutTests
{
    [Fact]
    public void Gpt2_124M_has_the_published_parameter_count()
    {
        var config = TransformerConfig.Gpt2(50257, 1024, 12, 768, 12);
        Assert.Equal(124_439_808L, Transformer.ParameterSpecs(config).Sum(p => p.Shape.ElementCount));
    }

    [Fact]
    public void SmolLM_135M_has_the_published_parameter_count()
    {
        var config = TransformerConfig.Llama(49152, 2048, 30, 576, 9, 3, hiddenChannels: 1536);
        Assert.Equal(134_515_008L, Transformer.ParameterSpecs(config).Sum(p => p.Shape.ElementCount));
    }

    [Fact]
    public void Qwen2_5_0_5B_has_the_published_parameter_count()
    {
        var config = TransformerConfig.Llama(151936, 32768, 24, 896, 14, 2, hiddenChannels: 4864) with { AttentionBias = true };
        Assert.Equal(494_032_768L, Transformer.ParameterSpecs(config).Sum(p => p.Shape.ElementCount));
    }

    [Fact]
    public void Matrices_come_first_so_weight_decay_is_one_contiguous_run()
    {
        using var backend = new CpuBackend(1);
        var config = TransformerConfig.Gpt2(61, 16, 2, 32, 4);
        using var set = new ParameterSet(backend, Transformer.ParameterSpecs(config), trainable: false);
        var kinds = set.Parameters.Select(p => p.Kind == ParameterKind.Matrix).ToList();
        int firstOther = kinds.IndexOf(false);
        Assert.True(firstOther > 0);
        Assert.DoesNotContain(true, kinds.Skip(firstOther));
        Assert.Equal(set.Parameters[firstOther].Offset, set.MatrixElementCount);
        Assert.Equal(set.Parameters.Sum(p => p.ElementCount), set.ElementCount);
    }

    [Theory]
    [InlineData(Architecture.Gpt2, false)]
    [InlineData(Architecture.Llama, true)]
    [InlineData(Architecture.Llama, false)]
    public void Hugging_Face_map_covers_every_parameter_element_exactly_once(Architecture arch, bool tied)
    {
        var config = (arch == Architecture.Gpt2
            ? TransformerConfig.Gpt2(61, 16, 2, 32, 4)
            : TransformerConfig.Llama(61, 16, 2, 48, 6, 2, 80) with { AttentionBias = true }) with { TiedEmbeddings = tied || arch == Architecture.Gpt2 };
        var specs = Transformer.ParameterSpecs(config).ToDictionary(p => p.Name, p => p.Shape);
        var covered = specs.ToDictionary(kv => kv.Key, kv => new int[kv.Value.ElementCount]);
        foreach (var map in HfWeightMap.For(config))
        {
            var shape = specs[map.EngineName];
            var marks = Enumerable.Range(1, (int)map.HfShape.ElementCount).Select(i => (float)i).ToArray();
            var engine = new float[shape.ElementCount];
            HfWeightMap.Import(map, marks, engine, shape);
            var back = new float[marks.Length];
            HfWeightMap.Export(map, engine, shape, back);
            Assert.Equal(marks, back);
            for (int i = 0; i < engine.Length; i++)
            {
                covered[map.EngineName][i] += engine[i] != 0 ? 1 : 0;
            }
        }

        foreach (var (name, counts) in covered)
        {
            Assert.True(counts.All(c => c == 1), $"{name}: some elements are covered {counts.Min()}..{counts.Max()} times");
        }
    }

    [Fact]
    public void Gpt2_conv1d_weights_are_transposed_into_out_in_layout()
    {
        var config = TransformerConfig.Gpt2(61, 16, 1, 4, 2);
        var map = HfWeightMap.For(config).Single(m => m.HfName == "transformer.h.0.attn.c_attn.weight");
        Assert.True(map.Transposed);
        Assert.Equal(new Shape(4, 12), map.HfShape);
        var hf = Enumerable.Range(0, 48).Select(i => (float)i).ToArray(); // hf[i, o] = 12·i + o
        var engine = new float[48];
        HfWeightMap.Import(map, hf, engine, new Shape(12, 4));
        Assert.Equal(hf[(1 * 12) + 7], engine[(7 * 4) + 1]); // engine[o, i] = hf[i, o]
    }

    [Fact]
    public void Invalid_configs_name_the_field()
    {
        var e = Assert.Throws<ArgumentException>(() => TransformerConfig.Llama(10, 8, 1, 48, 6, 4).Validate());
        Assert.Contains("KvHeads", e.Message);
        e = Assert.Throws<ArgumentException>(() => (TransformerConfig.Gpt2(10, 8, 1, 32, 4) with { VocabSize = 0 }).Validate());
        Assert.Contains("VocabSize", e.Message);
    }
}
