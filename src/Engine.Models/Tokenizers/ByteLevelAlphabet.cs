using System.Text;

namespace Engine.Models.Tokenizers;

/// <summary>
/// GPT-2's reversible map between bytes and printable characters (<c>bytes_to_unicode</c>): printable Latin-1 bytes
/// map to themselves, the other 68 bytes to U+0100 upwards, so every byte string is a string of visible characters
/// (a space becomes 'Ġ', a newline 'Ċ').
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>The character that stands for each byte.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>The byte each character stands for, or -1; indexed by char up to U+0143.</summary>
    private static readonly short[] CharToByteTable = BuildCharToByte();

    /// <summary>The 256 bytes in GPT-2's vocabulary order: printable ones first, then the rest.</summary>
    public static readonly byte[] Gpt2Order = BuildGpt2Order();

    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;

    /// <summary>The byte-level string of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text.ToArray());
        return Encode(bytes);
    }

    /// <summary>The byte-level string of <paramref name="bytes"/>.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (span, b) =>
        {
            for (int i = 0; i < b.Length; i++)
            {
                span[i] = ByteToChar[b[i]];
            }
        });
    }

    /// <summary>The bytes of a byte-level string, or null when a character is outside the alphabet.</summary>
    public static byte[]? Decode(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            int b = CharToByte(token[i]);
            if (b < 0)
            {
                return null;
            }

            bytes[i] = (byte)b;
        }

        return bytes;
    }

    private static byte[] BuildGpt2Order()
    {
        var order = new List<byte>(256);
        var seen = new bool[256];
        for (int b = 0; b < 256; b++)
        {
            if (IsPrintable(b))
            {
                order.Add((byte)b);
                seen[b] = true;
            }
        }

        for (int b = 0; b < 256; b++)
        {
            if (!seen[b])
            {
                order.Add((byte)b);
            }
        }

        return [.. order];
    }

    private static bool IsPrintable(int b) => b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            map[b] = IsPrintable(b) ? (char)b : (char)(256 + next++);
        }

        return map;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[0x144];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++)
        {
            table[ByteToChar[b]] = (short)b;
        }

        return table;
    }
}
