#!/usr/bin/python3
"""Writes tests/data/sentencepiece-unigram/: two hand-built SentencePiece UNIGRAM models and
the ids and text libsentencepiece gives for a set of strings (the reference our tokenizer is
tested against), and the same for trained.model on the lines of sample.txt. Needs Debian's
python3-sentencepiece (run with /usr/bin/python3); the test itself does not.

trained.model was made once with Debian's spm_train 0.1.97 from the first 100,000 bytes of
../shared/data/heldout-dev.txt (Austen): --model_type=unigram --vocab_size=800
--byte_fallback=true --character_coverage=0.9995 --user_defined_symbols='<sep>' (the default
nmt_nfkc normalization). sample.txt holds later paragraphs of that file plus lines for NFKC,
byte fallback, whitespace and the user-defined symbol.

The models are small on purpose: ties between a piece and its parts, an UNUSED piece that
would win, a user-defined piece inside a better NORMAL piece, multi-byte characters, unknown
runs, and (second model) byte fallback with extra whitespace removed.
"""
import json
import os
import random
import struct
import sys

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'data',
                   'sentencepiece-unigram')
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1
SPACE = '\u2581'
PIECES = [('<unk>', 0, UNKNOWN), ('<s>', 0, CONTROL), ('</s>', 0, CONTROL),
          (SPACE, -1.0, NORMAL), ('a', -2.0, NORMAL), ('b', -2.5, NORMAL), ('c', -3.0, NORMAL),
          ('ab', -3.5, NORMAL), ('bc', -6.0, NORMAL), (SPACE + 'a', -2.5, NORMAL),
          ('abc', -4.0, NORMAL), ('<sep>', 0, USER_DEFINED), ('ca', -1.0, UNUSED),
          (SPACE + 'b', -3.5, NORMAL), ('\u00e9', -2.0, NORMAL), ('bb', -5.0, NORMAL),
          ('<se', -0.5, NORMAL), ('p>', -0.5, NORMAL), ('cb', 0, USER_DEFINED),
          ('acb', -0.01, NORMAL)]
BYTES = [('<0x%02X>' % b, 0, BYTE) for b in range(256)]
ALPHABET = ['a', 'b', 'c', ' ', '\u00e9', 'x', 'y', '<sep>', 'ab', '  ', '\u00e8', 'bc', 'cb']
FIXED = ['acb', 'acbcb', '<sep>', 'bcb', '<se', 'abcb', 'abc', 'ab', 'ba', 'bb', 'b', ' a',
         'a b  c', 'ca', 'xy', 'x', 'a<sep>b', '\u00e9\u00e8', '']


def varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_field(field, value):
    return varint(field << 3) + varint(value)


def bytes_field(field, data):
    return varint((field << 3) | 2) + varint(len(data)) + data


def model_proto(pieces, byte_fallback, add_dummy_prefix, remove_extra_whitespaces):
    out = b''
    for piece, score, kind in pieces:
        message = (bytes_field(1, piece.encode()) + varint((2 << 3) | 5) +
                   struct.pack('<f', score) + varint_field(3, kind))
        out += bytes_field(1, message)
    trainer = varint_field(3, UNIGRAM) + varint_field(35, int(byte_fallback)) + varint_field(43, -1)
    normalizer = (bytes_field(1, b'identity') + varint_field(3, int(add_dummy_prefix)) +
                  varint_field(4, int(remove_extra_whitespaces)))
    return out + bytes_field(2, trainer) + bytes_field(3, normalizer)


def main():
    random.seed(7)
    texts = FIXED + [''.join(random.choice(ALPHABET) for _ in range(random.randint(1, 12)))
                     for _ in range(120)]
    os.makedirs(OUT, exist_ok=True)
    expected = {'sentencepiece_version': spm.__version__, 'models': {}}
    for name, pieces, byte_fallback, remove_extra in [('plain', PIECES, False, False),
                                                      ('byte_fallback', PIECES + BYTES, True, True)]:
        blob = model_proto(pieces, byte_fallback, True, remove_extra)
        with open(os.path.join(OUT, name + '.model'), 'wb') as f:
            f.write(blob)
        processor = spm.SentencePieceProcessor(model_proto=blob)
        cases = []
        for text in texts:
            ids = processor.encode(text)
            cases.append({'text': text, 'ids': ids, 'decoded': processor.decode(ids)})
        expected['models'][name] = cases
    processor = spm.SentencePieceProcessor(model_file=os.path.join(OUT, 'trained.model'))
    with open(os.path.join(OUT, 'sample.txt'), encoding='utf-8') as f:
        lines = f.read().split('\n')[:-1]
    expected['models']['trained'] = [
        {'text': line, 'ids': processor.encode(line), 'decoded': processor.decode(processor.encode(line))}
        for line in lines]
    # One case per line, so that a change to the fixture reads as a diff of cases.
    models = ',\n'.join(
        '%s: [\n%s\n]' % (json.dumps(name),
                            ',\n'.join(json.dumps(case, ensure_ascii=False) for case in cases))
        for name, cases in expected['models'].items())
    with open(os.path.join(OUT, 'expected.json'), 'w', encoding='utf-8') as f:
        f.write('{"sentencepiece_version": %s, "models": {\n%s\n}}\n' %
                (json.dumps(expected['sentencepiece_version']), models))
    return 0


if __name__ == '__main__':
    sys.exit(main())
