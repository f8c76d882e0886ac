// Shared between the library (compiled with FREQFUSION_LIBRARY) and the MSBuild inline task in
// buildTransitive/MLNetFreqFusion.targets (compiled by RoslynCodeTaskFactory without it), so the ELF edit that
// the build applies is the very code the tests exercise.
#nullable enable
using System;
using System.IO;
using System.Text;

namespace MLNetFreqFusion.Native
{
    /// <summary>Outcome of <see cref="LibStdCxxCompatPatch.Apply"/>.</summary>
    internal enum LibStdCxxPatchResult
    {
        /// <summary>The file was edited.</summary>
        Patched,
        /// <summary>The file already carries the edit; nothing was written.</summary>
        AlreadyPatched,
    }

    /// <summary>
    /// Makes TorchSharp 0.107's libLibTorchSharp.so load on libstdc++ older than GCC 13 (Debian 12, Ubuntu 22.04).
    /// The library needs GLIBCXX_3.4.32 for a single symbol, std::ios_base_library_init(), which GCC 13 emits in
    /// every translation unit that includes iostream. The edit marks that version requirement weak and rebinds the
    /// symbol to std::ios_base::Init::Init() @GLIBCXX_3.4, which on GCC 12 only bumps the stream-init reference
    /// count — what ios_base_library_init means. docs/linux.md tells the whole story.
    /// </summary>
    internal static class LibStdCxxCompatPatch
    {
        internal const string MissingVersion = "GLIBCXX_3.4.32";
        internal const string BaseVersion = "GLIBCXX_3.4";
        internal const string NewSymbol = "_ZSt21ios_base_library_initv";
        internal const string OldSymbol = "_ZNSt8ios_base4InitC1Ev";
        const ushort VerFlgWeak = 0x2;
        const uint ShtDynsym = 11, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;

        /// <summary>True when the libstdc++ the process would load lacks <see cref="MissingVersion"/>.</summary>
        internal static bool SystemLibStdCxxLacksRequiredVersion(out string? libraryPath)
        {
            libraryPath = null;
            foreach (var candidate in new[]
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
                "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            })
            {
                if (!File.Exists(candidate))
                    continue;
                libraryPath = candidate;
                return IndexOf(File.ReadAllBytes(candidate), Encoding.ASCII.GetBytes(MissingVersion + "\0")) < 0;
            }
            return false;
        }

        /// <summary>
        /// Edits the ELF file in place. Throws <see cref="InvalidDataException"/> when the file does not have the
        /// layout this edit was written for (another TorchSharp build), rather than guessing.
        /// </summary>
        internal static LibStdCxxPatchResult Apply(string path)
        {
            var elf = File.ReadAllBytes(path);
            var result = Patch(elf, path);
            if (result == LibStdCxxPatchResult.Patched)
                File.WriteAllBytes(path, elf);
            return result;
        }

        /// <summary>Applies the edit to an ELF image in memory.</summary>
        internal static LibStdCxxPatchResult Patch(byte[] elf, string nameForErrors)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw Unexpected(nameForErrors, "it is not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw Unexpected(nameForErrors, "it is not a 64-bit little-endian ELF file");

            ulong shoff = U64(elf, 0x28);
            int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
            Section? dynsym = null, verneed = null, versym = null;
            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                int h = checked((int)shoff + i * shentsize);
                var s = new Section(U32(elf, h + 4), (int)U64(elf, h + 0x18), (int)U64(elf, h + 0x20), (int)U32(elf, h + 0x28));
                sections[i] = s;
                if (s.Type == ShtDynsym) dynsym = s;
                else if (s.Type == ShtGnuVerneed) verneed = s;
                else if (s.Type == ShtGnuVersym) versym = s;
            }
            if (dynsym is null || verneed is null || versym is null)
                throw Unexpected(nameForErrors, "it has no .dynsym, .gnu.version_r or .gnu.version section");
            var dynstr = sections[dynsym.Link];

            // .gnu.version_r: find the GLIBCXX_3.4.32 and GLIBCXX_3.4 auxiliary entries.
            int missingAux = -1, baseVersionIndex = -1;
            for (int vn = verneed.Offset; ;)
            {
                int count = U16(elf, vn + 2);
                int aux = vn + (int)U32(elf, vn + 8);
                for (int a = 0; a < count; a++)
                {
                    string name = CString(elf, dynstr.Offset + (int)U32(elf, aux + 8));
                    if (name == MissingVersion) missingAux = aux;
                    else if (name == BaseVersion) baseVersionIndex = U16(elf, aux + 6);
                    uint nextAux = U32(elf, aux + 12);
                    if (nextAux == 0) break;
                    aux += (int)nextAux;
                }
                uint next = U32(elf, vn + 12);
                if (next == 0) break;
                vn += (int)next;
            }
            if (missingAux < 0 || baseVersionIndex < 0)
                throw Unexpected(nameForErrors, $"it does not require both {MissingVersion} and {BaseVersion}");

            // .dynsym: find the symbol that needs the missing version (or its already rebound form).
            int symbolIndex = -1;
            bool alreadyRebound = false;
            int count_ = dynsym.Size / 24;
            for (int i = 1; i < count_; i++)
            {
                string name = CString(elf, dynstr.Offset + (int)U32(elf, dynsym.Offset + i * 24));
                if (name == NewSymbol) { symbolIndex = i; break; }
            }
            if (symbolIndex < 0)
            {
                int missingIndex = U16(elf, missingAux + 6);
                for (int i = 1; i < count_; i++)
                {
                    string name = CString(elf, dynstr.Offset + (int)U32(elf, dynsym.Offset + i * 24));
                    if (name == OldSymbol && U16(elf, versym.Offset + 2 * i) == baseVersionIndex)
                    {
                        int nameOffset = dynstr.Offset + (int)U32(elf, dynsym.Offset + i * 24);
                        // Our rebinding leaves the tail of the longer name's slot NUL-padded; a genuine import would not.
                        if (AllZero(elf, nameOffset + OldSymbol.Length, NewSymbol.Length - OldSymbol.Length))
                        {
                            alreadyRebound = true;
                            symbolIndex = i;
                        }
                    }
                    else if (U16(elf, versym.Offset + 2 * i) == missingIndex)
                        throw Unexpected(nameForErrors, $"the symbol {name} also needs {MissingVersion}");
                }
                if (!alreadyRebound)
                    throw Unexpected(nameForErrors, $"no dynamic symbol named {NewSymbol}");
            }

            ushort flags = U16(elf, missingAux + 4);
            if (alreadyRebound && (flags & VerFlgWeak) != 0)
                return LibStdCxxPatchResult.AlreadyPatched;

            W16(elf, missingAux + 4, (ushort)(flags | VerFlgWeak));
            int nameAt = dynstr.Offset + (int)U32(elf, dynsym.Offset + symbolIndex * 24);
            var replacement = Encoding.ASCII.GetBytes(OldSymbol);
            Array.Clear(elf, nameAt, NewSymbol.Length);
            Buffer.BlockCopy(replacement, 0, elf, nameAt, replacement.Length);
            W16(elf, versym.Offset + 2 * symbolIndex, (ushort)baseVersionIndex);
            return LibStdCxxPatchResult.Patched;
        }

        sealed class Section
        {
            public Section(uint type, int offset, int size, int link) { Type = type; Offset = offset; Size = size; Link = link; }
            public uint Type { get; }
            public int Offset { get; }
            public int Size { get; }
            public int Link { get; }
        }

        static InvalidDataException Unexpected(string file, string why) => new InvalidDataException(
            $"MLNetFreqFusion cannot apply its libstdc++ compatibility edit to '{file}': {why}. This TorchSharp build is not " +
            "the one (0.107.0) the edit was written for. Use TorchSharp 0.107.0, run on a distribution whose libstdc++ has " +
            $"{MissingVersion} (GCC 13 or newer), or set the MSBuild property MLNetFreqFusionPatchLibStdCxx=false and " +
            "provide a compatible libstdc++ yourself. See docs/linux.md.");

        static bool AllZero(byte[] b, int start, int length)
        {
            for (int i = 0; i < length; i++) if (b[start + i] != 0) return false;
            return true;
        }
        static ushort U16(byte[] b, int o) => (ushort)(b[o] | b[o + 1] << 8);
        static uint U32(byte[] b, int o) => (uint)(b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24);
        static ulong U64(byte[] b, int o) => U32(b, o) | (ulong)U32(b, o + 4) << 32;
        static void W16(byte[] b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
        static string CString(byte[] b, int o)
        {
            int end = o;
            while (b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, o, end - o);
        }
        internal static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }
}

#if !FREQFUSION_LIBRARY
namespace MLNetFreqFusion.Build
{
    using Microsoft.Build.Framework;
    using MLNetFreqFusion.Native;

    /// <summary>MSBuild task: applies <see cref="LibStdCxxCompatPatch"/> to every libLibTorchSharp.so under a folder.</summary>
    public sealed class PatchLibTorchSharpForOldLibStdCxx : Microsoft.Build.Utilities.Task
    {
        /// <summary>Folder to search (the build or publish output).</summary>
        [Required]
        public string Directory { get; set; } = "";

        /// <inheritdoc />
        public override bool Execute()
        {
            if (!System.IO.Directory.Exists(Directory))
                return true;
            var files = System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories);
            if (files.Length == 0)
                return true;
            if (!LibStdCxxCompatPatch.SystemLibStdCxxLacksRequiredVersion(out var libstdcxx))
                return true;
            foreach (var file in files)
            {
                try
                {
                    if (LibStdCxxCompatPatch.Apply(file) == LibStdCxxPatchResult.Patched)
                        Log.LogMessage(MessageImportance.High,
                            $"MLNetFreqFusion: patched {file} to load with {libstdcxx}, which lacks " +
                            $"{LibStdCxxCompatPatch.MissingVersion} (see docs/linux.md).");
                }
                catch (InvalidDataException e)
                {
                    Log.LogError(e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
}
#endif
