"""A synthetic national CNES register as CSV: valid CNES/CNPJ across the 27 UFs.

Run ``.venv/bin/python bench/seed.py [--count N] [--seed S] [--out PATH]`` (default 340,000
rows to stdout). Establishments are spread over the UFs by population (IBGE 2022, millions)
and, inside each UF, over a few of its municipalities by population. CNES are unique; the
same seed gives the same file. Header: cnes,cnpj,razao_social,nome_fantasia,uf,municipio,
cep,endereco,telefone,email (the import path's required columns).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import random  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from engine import identifiers  # noqa: E402

HEADER = ("cnes", "cnpj", "razao_social", "nome_fantasia", "uf", "municipio", "cep",
          "endereco", "telefone", "email")  # fmt: skip

# UF: (population in millions, DDD, first CEP digits, [(municipality, weight), ...])
UFS: dict[str, tuple[float, str, str, list[tuple[str, float]]]] = {
    "SP": (44.4, "11", "0", [("São Paulo", 11.4), ("Campinas", 1.1), ("Guarulhos", 1.3), ("Ribeirão Preto", 0.7), ("Sorocaba", 0.7)]),
    "MG": (20.5, "31", "3", [("Belo Horizonte", 2.3), ("Uberlândia", 0.7), ("Contagem", 0.6), ("Juiz de Fora", 0.5)]),
    "RJ": (16.1, "21", "2", [("Rio de Janeiro", 6.2), ("São Gonçalo", 0.9), ("Duque de Caxias", 0.8), ("Niterói", 0.5)]),
    "BA": (14.1, "71", "4", [("Salvador", 2.4), ("Feira de Santana", 0.6), ("Vitória da Conquista", 0.4)]),
    "PR": (11.4, "41", "8", [("Curitiba", 1.8), ("Londrina", 0.6), ("Maringá", 0.4)]),
    "RS": (10.9, "51", "9", [("Porto Alegre", 1.3), ("Caxias do Sul", 0.5), ("Pelotas", 0.3)]),
    "PE": (9.1, "81", "5", [("Recife", 1.5), ("Jaboatão dos Guararapes", 0.6), ("Caruaru", 0.4)]),
    "CE": (8.8, "85", "6", [("Fortaleza", 2.4), ("Caucaia", 0.4), ("Juazeiro do Norte", 0.3)]),
    "PA": (8.1, "91", "6", [("Belém", 1.3), ("Ananindeua", 0.5), ("Santarém", 0.3)]),
    "SC": (7.6, "48", "8", [("Joinville", 0.6), ("Florianópolis", 0.5), ("Blumenau", 0.4)]),
    "GO": (7.1, "62", "7", [("Goiânia", 1.4), ("Aparecida de Goiânia", 0.5), ("Anápolis", 0.4)]),
    "MA": (6.8, "98", "6", [("São Luís", 1.0), ("Imperatriz", 0.3), ("Timon", 0.2)]),
    "AM": (3.9, "92", "6", [("Manaus", 2.1), ("Parintins", 0.1), ("Itacoatiara", 0.1)]),
    "ES": (3.8, "27", "2", [("Serra", 0.5), ("Vila Velha", 0.5), ("Vitória", 0.3)]),
    "PB": (4.0, "83", "5", [("João Pessoa", 0.8), ("Campina Grande", 0.4), ("Santa Rita", 0.1)]),
    "RN": (3.3, "84", "5", [("Natal", 0.8), ("Mossoró", 0.3), ("Parnamirim", 0.3)]),
    "MT": (3.7, "65", "7", [("Cuiabá", 0.7), ("Várzea Grande", 0.3), ("Rondonópolis", 0.2)]),
    "AL": (3.1, "82", "5", [("Maceió", 1.0), ("Arapiraca", 0.2), ("Rio Largo", 0.1)]),
    "PI": (3.3, "86", "6", [("Teresina", 0.9), ("Parnaíba", 0.2), ("Picos", 0.1)]),
    "DF": (2.8, "61", "7", [("Brasília", 2.8)]),
    "MS": (2.8, "67", "7", [("Campo Grande", 0.9), ("Dourados", 0.2), ("Três Lagoas", 0.1)]),
    "SE": (2.2, "79", "4", [("Aracaju", 0.6), ("Nossa Senhora do Socorro", 0.2), ("Lagarto", 0.1)]),
    "RO": (1.6, "69", "7", [("Porto Velho", 0.5), ("Ji-Paraná", 0.1), ("Ariquemes", 0.1)]),
    "TO": (1.5, "63", "7", [("Palmas", 0.3), ("Araguaína", 0.2), ("Gurupi", 0.1)]),
    "AC": (0.8, "68", "6", [("Rio Branco", 0.4), ("Cruzeiro do Sul", 0.1)]),
    "AP": (0.7, "96", "6", [("Macapá", 0.4), ("Santana", 0.1)]),
    "RR": (0.6, "95", "6", [("Boa Vista", 0.4), ("Rorainópolis", 0.03)]),
}  # fmt: skip

KINDS = ("Unidade Básica de Saúde", "Hospital", "Clínica", "Laboratório", "Policlínica",
         "Centro de Atenção Psicossocial", "Pronto Atendimento", "Consultório")  # fmt: skip
NAMES = ("Santa Maria", "São José", "Bom Jesus", "Nossa Senhora", "Vida", "Esperança",
         "Central", "do Povo", "Boa Saúde", "Santa Luzia", "São Lucas", "Primavera")  # fmt: skip
STREETS = ("Rua das Flores", "Avenida Brasil", "Rua XV de Novembro", "Avenida Getúlio Vargas",
           "Rua São Paulo", "Rua Sete de Setembro", "Avenida Santos Dumont")  # fmt: skip


def places() -> list[tuple[str, str, str, str]]:
    """(uf, municipio, ddd, cep prefix) with cumulative weights, for random.choices."""
    out = []
    for uf, (_pop, ddd, cep, towns) in UFS.items():
        for town, _w in towns:
            out.append((uf, town, ddd, cep))
    return out


def weights() -> list[float]:
    out = []
    for pop, _ddd, _cep, towns in UFS.values():
        total = sum(w for _t, w in towns)
        out.extend(pop * w / total for _t, w in towns)
    return out


def rows(count: int, seed: int = 1) -> Iterator[tuple[str, ...]]:
    rng = random.Random(seed)
    where = rng.choices(places(), weights=weights(), k=count)
    cnes_numbers = rng.sample(range(10**6, 10**7), count)  # unique, 7 digits
    for i in range(count):
        uf, town, ddd, cep = where[i]
        cnes = str(cnes_numbers[i])
        kind, name = rng.choice(KINDS), rng.choice(NAMES)
        yield (
            cnes,
            identifiers.generate_cnpj(rng),
            f"{kind} {name} {cnes} Ltda",
            f"{kind} {name}",
            uf,
            town,
            cep + f"{rng.randrange(10**7):07d}",
            f"{rng.choice(STREETS)}, {rng.randrange(1, 3000)}",
            f"{ddd}9{rng.randrange(10**8):08d}",
            f"contato{cnes}@saude.example.org",
        )


def write(out: io.TextIOBase, count: int, seed: int = 1) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(count, seed))


def text(count: int, seed: int = 1) -> str:
    buffer = io.StringIO()
    write(buffer, count, seed)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=340_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.out:
        with args.out.open("w", encoding="utf-8", newline="") as fh:
            write(fh, args.count, args.seed)
    else:
        write(sys.stdout, args.count, args.seed)


if __name__ == "__main__":
    main()
